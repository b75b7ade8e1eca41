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
    /// Received and not yet completed, retried or dead-lettered.
    in_flight: Vec<Delivery>,
    dead: Vec<(String, String)>,
    /// Where every change is written (`LOCAL_QUEUE_FILE`), once [`MemoryQueue::keep_in`].
    file: Option<std::path::PathBuf>,
}

impl State {
    /// Forgets one in-flight delivery equal to `d` (equal ones are interchangeable).
    fn finish(&mut self, d: &Delivery) {
        if let Some(i) = self.in_flight.iter().position(|x| x == d) {
            self.in_flight.swap_remove(i);
        }
    }

    /// Writes every message, waiting or in flight, to the queue file, if there is one. A
    /// message in flight is written as visible at `now_ms`: if the process dies before its
    /// job ends, the next start runs it again (as SQS would after its visibility timeout);
    /// its receive count already counts the interrupted delivery. Written to a temporary
    /// file and renamed over the old one, under the queue's lock, so the file is always one
    /// whole, current state.
    fn persist(&self, now_ms: i64) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let saved: Vec<Saved> = self
            .pending
            .iter()
            .map(|((at, _), d)| (*at, d))
            .chain(self.in_flight.iter().map(|d| (now_ms, d)))
            .map(|(visible_at_ms, d)| Saved {
                visible_at_ms,
                delivery: d.clone(),
            })
            .collect();
        write_atomically(path, &saved)
    }
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

    fn push(&self, delivery: Delivery, delay_s: u32) -> std::io::Result<()> {
        let now = self.clock.now_ms();
        let at = now + i64::from(delay_s) * 1000;
        let mut s = self.lock();
        s.seq += 1;
        let seq = s.seq;
        s.pending.insert((at, seq), delivery);
        s.persist(now)
    }

    /// Writes the state after a change the caller cannot undo; a failure is logged (the
    /// next change writes the whole state again).
    fn persist_logged(&self, s: &State, now_ms: i64) {
        if let Err(e) = s.persist(now_ms) {
            tracing::error!(error = %e, "could not write the queue file");
        }
    }

    /// Takes every message visible now (counting the receive), like a batch receive.
    pub fn receive_due(&self) -> Vec<Delivery> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let later = s.pending.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut s.pending, later);
        let due: Vec<Delivery> = due
            .into_values()
            .map(|mut d| {
                d.receive_count += 1;
                d
            })
            .collect();
        if !due.is_empty() {
            s.in_flight.extend(due.iter().cloned());
            self.persist_logged(&s, now);
        }
        due
    }

    /// The job ran: forget it.
    pub fn complete(&self, d: Delivery) {
        let mut s = self.lock();
        s.finish(&d);
        self.persist_logged(&s, self.clock.now_ms());
    }

    /// Failed transiently: visible again after `delay_s`, unless it has been received
    /// `MAX_RECEIVES` times, when it goes to the dead letters (the SQS redrive rule).
    pub fn retry(&self, d: Delivery, delay_s: u32, reason: &str) {
        if d.receive_count >= MAX_RECEIVES {
            self.dead_letter(d, &format!("{MAX_RECEIVES} receives; last error: {reason}"));
            return;
        }
        let now = self.clock.now_ms();
        let mut s = self.lock();
        s.finish(&d);
        s.seq += 1;
        let seq = s.seq;
        s.pending.insert((now + i64::from(delay_s) * 1000, seq), d);
        self.persist_logged(&s, now);
    }

    pub fn dead_letter(&self, d: Delivery, reason: &str) {
        tracing::error!(body = %d.body, reason, "job dead-lettered");
        let mut s = self.lock();
        s.finish(&d);
        s.dead.push((d.body, reason.to_owned()));
        self.persist_logged(&s, self.clock.now_ms());
    }

    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.lock().dead.clone()
    }

    /// Messages waiting or being worked on.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.pending.len() + s.in_flight.len()
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
        self.persist_logged(&s, self.clock.now_ms());
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    visible_at_ms: i64,
    #[serde(flatten)]
    delivery: Delivery,
}

fn write_atomically(path: &std::path::Path, saved: &[Saved]) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(saved).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl MemoryQueue {
    /// Keeps the queue in `path` from now on (`LOCAL_QUEUE_FILE`): first loads the messages
    /// kept there by an earlier process, then writes the file again on every change
    /// (send, receive, completion, retry, dead letter). So a process that dies without
    /// shutting down loses no job: what was waiting is there, and what was running is run
    /// again. Returns how many messages were loaded.
    pub fn keep_in(&self, path: &std::path::Path) -> std::io::Result<usize> {
        // The file is replaced, never removed first: a kill in between loses nothing.
        let saved = read_saved(path)?;
        let n = saved.len();
        self.restore(saved);
        let mut s = self.lock();
        s.file = Some(path.to_owned());
        s.persist(self.clock.now_ms())?;
        Ok(n)
    }

    /// Writes every message, waiting or in flight, to `path`, so a restart can pick them up
    /// (what SQS would have kept across a restart of its consumers).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let mut s = self.lock();
        let kept = s.file.replace(path.to_owned());
        let r = s.persist(self.clock.now_ms());
        s.file = kept;
        r.map(|()| s.pending.len() + s.in_flight.len())
    }

    /// Loads messages saved by [`MemoryQueue::save`] and removes the file, so they are not
    /// loaded twice.
    pub fn load(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let saved = read_saved(path)?;
        let n = saved.len();
        self.restore(saved);
        if n > 0 || path.exists() {
            std::fs::remove_file(path)?;
        }
        Ok(n)
    }
}

/// The messages kept in `path` (none when there is no file).
fn read_saved(path: &std::path::Path) -> std::io::Result<Vec<(i64, Delivery)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let saved: Vec<Saved> = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    Ok(saved
        .into_iter()
        .map(|s| (s.visible_at_ms, s.delivery))
        .collect())
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, job: &Job, delay_s: u32) -> Result<(), QueueError> {
        // Kept in memory either way; a job the queue file missed would be lost by a kill,
        // so the sender hears of it.
        self.push(
            Delivery {
                body: job.to_body()?,
                receive_count: 0,
            },
            delay_s.min(900),
        )
        .map_err(|e| QueueError(format!("queue file: {e}")))
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
    async fn a_kill_loses_no_job_kept_in_a_file() {
        let clock = ManualClock::at(0);
        let path =
            std::env::temp_dir().join(format!("tollgate-queue-kill-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let q = MemoryQueue::new(Arc::new(clock.clone()));
        assert_eq!(q.keep_in(&path).unwrap(), 0);
        q.send(&job(1), 30).await.unwrap();
        q.send(&job(2), 0).await.unwrap();
        q.send(&job(3), 0).await.unwrap();
        let mut running = q.receive_due();
        assert_eq!(running.len(), 2);
        q.complete(running.remove(0));
        // Killed here, with job 2 running and job 1 waiting: no save, no shutdown.
        drop(q);
        let after = MemoryQueue::new(Arc::new(clock.clone()));
        assert_eq!(
            after.keep_in(&path).unwrap(),
            2,
            "waiting and running jobs kept"
        );
        let again = after.receive_due();
        assert_eq!(again.len(), 1, "the interrupted job runs again at once");
        assert_eq!(again[0].body, job(3).to_body().unwrap());
        assert_eq!(again[0].receive_count, 2, "the interrupted delivery counts");
        after.complete(again[0].clone());
        clock.advance(30);
        let later = after.receive_due();
        assert_eq!(later[0].body, job(1).to_body().unwrap());
        after.retry(later[0].clone(), 10, "provider down");
        drop(after);
        let third = MemoryQueue::new(Arc::new(clock.clone()));
        assert_eq!(
            third.keep_in(&path).unwrap(),
            1,
            "a retried job is kept too"
        );
        assert!(third.receive_due().is_empty(), "with its delay");
        let _ = std::fs::remove_file(&path);
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
