//! The local server's dispatcher loop: each tick it lists the events recorded in the last
//! minute (the event index, by time) and delivers those it has not seen, then tries again
//! the deliveries whose retry is due. Its first tick lists the whole retry period instead,
//! so a restart (over a DynamoDB table) resumes what was still pending: delivered records
//! are skipped without a request, their state says so. In AWS the table's stream does the listing; the
//! delivery itself is [`super::deliver::Dispatcher::deliver`] in both.

use super::deliver::Dispatcher;
use crate::domain::event::sort_key;
use crate::domain::line::Lines;
use crate::store::{Store, StoreError};
use std::collections::{BTreeSet, HashMap};

/// How far back each tick lists: a change commits a moment after it read the clock, so a
/// record may appear with a time slightly before the previous tick.
pub const LOOKBACK_S: i64 = 60;

pub struct LocalRunner {
    dispatcher: Dispatcher,
    /// Event ids already handed to the dispatcher, with their time (pruned past the
    /// lookback).
    seen: HashMap<String, i64>,
    /// (due at, event id) of deliveries to try again.
    retries: BTreeSet<(i64, String)>,
    started: bool,
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    pub new_events: u32,
    pub sent: u32,
    pub waiting: usize,
}

impl LocalRunner {
    pub fn new(dispatcher: Dispatcher) -> Self {
        LocalRunner {
            dispatcher,
            seen: HashMap::new(),
            retries: BTreeSet::new(),
            started: false,
        }
    }

    /// Retries waiting.
    pub fn waiting(&self) -> usize {
        self.retries.len()
    }

    pub async fn tick(
        &mut self,
        store: &dyn Store,
        lines: &Lines,
        now: i64,
    ) -> Result<Tick, StoreError> {
        let disabled: BTreeSet<String> = store
            .disabled_endpoints()
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        let mut tick = Tick::default();
        let mut after: Option<String> = None;
        let since = if self.started {
            now - LOOKBACK_S
        } else {
            now - self.dispatcher.policy.give_up_after_s
        };
        loop {
            let page = store
                .events_since(since, now, 100, after.as_deref())
                .await?;
            for r in page.records {
                after = Some(sort_key(&r.event));
                if self.seen.contains_key(&r.event.id) {
                    continue;
                }
                self.seen.insert(r.event.id.clone(), r.event.occurred_at);
                tick.new_events += 1;
                let id = r.event.id.clone();
                let pass = match self
                    .dispatcher
                    .deliver(store, lines, r, &disabled, now, false)
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        // Listed again by the next tick (within the lookback): sent again.
                        self.seen.remove(&id);
                        return Err(e);
                    }
                };
                tick.sent += pass.sent;
                if let Some(t) = pass.next_try {
                    self.retries.insert((t, id));
                }
            }
            if !page.more {
                break;
            }
        }
        self.started = true;
        self.seen.retain(|_, at| *at >= now - 2 * LOOKBACK_S);
        while let Some((due, id)) = self.retries.first().cloned() {
            if due > now {
                break;
            }
            self.retries.remove(&(due, id.clone()));
            let record = match store.get_event(&id).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.retries.insert((due, id));
                    return Err(e);
                }
            };
            let pass = match self
                .dispatcher
                .deliver(store, lines, record, &disabled, now, false)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    self.retries.insert((due, id));
                    return Err(e);
                }
            };
            tick.sent += pass.sent;
            if let Some(t) = pass.next_try {
                self.retries.insert((t, id));
            }
        }
        tick.waiting = self.retries.len();
        Ok(tick)
    }
}
