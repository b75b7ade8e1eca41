//! The in-process queue of the local server: delays, receive counts and the dead-letter rule
//! behave as with SQS, on the app's clock, so tests move time instead of sleeping.

use super::{Job, JobQueue, QueueError};
use crate::clock::Clock;
use crate::domain::retry::MAX_RECEIVES;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub body: String,
    /// How many times this message has been received, this delivery included.
    pub receive_count: u32,
}

#[derive(Default)]
struct State {
    /// (visible_at_ms, sequence) → message; the sequence keeps equal times in send order.
    pending: BTreeMap<(i64, u64), Delivery>,
    seq: u64,
    in_flight: usize,
    dead: Vec<(String, String)>,
}

pub struct MemoryQueue {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl MemoryQueue {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryQueue {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, delivery: Delivery, delay_s: u32) {
        let at = self.clock.now_ms() + i64::from(delay_s) * 1000;
        let mut s = self.lock();
        s.seq += 1;
        let seq = s.seq;
        s.pending.insert((at, seq), delivery);
    }

    /// Takes every message visible now (counting the receive), like a batch receive.
    pub fn receive_due(&self) -> Vec<Delivery> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let later = s.pending.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut s.pending, later);
        s.in_flight += due.len();
        due.into_values()
            .map(|mut d| {
                d.receive_count += 1;
                d
            })
            .collect()
    }

    /// The job ran: forget it.
    pub fn complete(&self, _d: Delivery) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    /// Failed transiently: visible again after `delay_s`, unless it has been received
    /// `MAX_RECEIVES` times, when it goes to the dead letters (the SQS redrive rule).
    pub fn retry(&self, d: Delivery, delay_s: u32, reason: &str) {
        if d.receive_count >= MAX_RECEIVES {
            self.dead_letter(d, &format!("{MAX_RECEIVES} receives; last error: {reason}"));
            return;
        }
        {
            let mut s = self.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.push(d, delay_s);
    }

    pub fn dead_letter(&self, d: Delivery, reason: &str) {
        tracing::error!(body = %d.body, reason, "job dead-lettered");
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.dead.push((d.body, reason.to_owned()));
    }

    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.lock().dead.clone()
    }

    /// Messages waiting or being worked on.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.pending.len() + s.in_flight
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every waiting message with its visibility time (ms), oldest first.
    pub fn pending(&self) -> Vec<(i64, Delivery)> {
        self.lock()
            .pending
            .iter()
            .map(|((at, _), d)| (*at, d.clone()))
            .collect()
    }

    /// Restores messages saved by [`MemoryQueue::pending`] at the last shutdown.
    pub fn restore(&self, saved: Vec<(i64, Delivery)>) {
        let mut s = self.lock();
        for (at, d) in saved {
            s.seq += 1;
            let seq = s.seq;
            s.pending.insert((at, seq), d);
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    visible_at_ms: i64,
    #[serde(flatten)]
    delivery: Delivery,
}

impl MemoryQueue {
    /// Writes every waiting message to `path`, so a restart can pick them up (what SQS
    /// would have kept across a restart of its consumers).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let saved: Vec<Saved> = self
            .pending()
            .into_iter()
            .map(|(visible_at_ms, delivery)| Saved {
                visible_at_ms,
                delivery,
            })
            .collect();
        let text = serde_json::to_string_pretty(&saved).map_err(std::io::Error::other)?;
        std::fs::write(path, text)?;
        Ok(saved.len())
    }

    /// Loads messages saved by [`MemoryQueue::save`] and removes the file, so they are not
    /// loaded twice.
    pub fn load(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let saved: Vec<Saved> = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        let n = saved.len();
        self.restore(
            saved
                .into_iter()
                .map(|s| (s.visible_at_ms, s.delivery))
                .collect(),
        );
        std::fs::remove_file(path)?;
        Ok(n)
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, job: &Job, delay_s: u32) -> Result<(), QueueError> {
        self.push(
            Delivery {
                body: job.to_body()?,
                receive_count: 0,
            },
            delay_s.min(900),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn job(n: u32) -> Job {
        Job::RequeryOrder {
            order_id: format!("o{n}"),
        }
    }

    #[tokio::test]
    async fn delays_and_order_are_honoured() {
        let clock = ManualClock::at(100);
        let q = MemoryQueue::new(Arc::new(clock.clone()));
        q.send(&job(1), 10).await.unwrap();
        q.send(&job(2), 0).await.unwrap();
        q.send(&job(3), 0).await.unwrap();
        let now: Vec<_> = q.receive_due().into_iter().map(|d| d.body).collect();
        assert_eq!(
            now,
            vec![job(2).to_body().unwrap(), job(3).to_body().unwrap()]
        );
        assert!(q.receive_due().is_empty());
        clock.advance(10);
        let later = q.receive_due();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].receive_count, 1);
        assert_eq!(q.len(), 3, "in flight until completed");
    }

    #[tokio::test]
    async fn waiting_messages_survive_a_restart_through_a_file() {
        let clock = ManualClock::at(0);
        let q = MemoryQueue::new(Arc::new(clock.clone()));
        q.send(&job(1), 30).await.unwrap();
        q.send(&job(2), 0).await.unwrap();
        let path = std::env::temp_dir().join(format!("tollgate-queue-{}.json", std::process::id()));
        assert_eq!(q.save(&path).unwrap(), 2);
        let after = MemoryQueue::new(Arc::new(clock.clone()));
        assert_eq!(after.load(&path).unwrap(), 2);
        assert!(!path.exists(), "loaded once");
        assert_eq!(after.load(&path).unwrap(), 0);
        assert_eq!(after.receive_due().len(), 1);
        clock.advance(30);
        assert_eq!(after.receive_due()[0].body, job(1).to_body().unwrap());
    }

    #[tokio::test]
    async fn retries_then_dead_letters_after_max_receives() {
        let clock = ManualClock::at(0);
        let q = MemoryQueue::new(Arc::new(clock.clone()));
        q.send(&job(1), 0).await.unwrap();
        for round in 1..=MAX_RECEIVES {
            let mut got = q.receive_due();
            assert_eq!(got.len(), 1, "round {round}");
            let d = got.remove(0);
            assert_eq!(d.receive_count, round);
            q.retry(d, 5, "provider down");
            clock.advance(5);
        }
        assert!(q.is_empty());
        assert_eq!(q.dead_letters().len(), 1);
        assert!(q.dead_letters()[0].1.contains("provider down"));
    }
}
