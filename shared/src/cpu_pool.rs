//! Where the expensive part of checking an unauthenticated request runs: the RSA signatures
//! of WeChat Pay and Alipay (and WeChat's AES-GCM decryption), Apple's JWS and certificate
//! chain, Google's push token.
//!
//! The local server serves every request on as many async workers as there are CPUs. Run
//! there, a flood of forged callbacks, each costing a signature check, would hold the workers
//! and leave `/healthz` and order creation waiting behind it. So the local server's pool runs
//! such work on tokio's blocking threads, at most one job per CPU at a time; the async
//! workers stay free for everything else. A caller waits for a turn at most
//! [`CpuPool::MAX_WAIT`]; after that it is answered "busy, retry later" (the provider's
//! retry-later answer, a 503): every provider retries, and a flood is shed rather than queued
//! without end behind the connection cap.
//!
//! A Lambda execution environment serves one request at a time on a single-threaded runtime:
//! there is nothing to keep free, so its pool runs the work in place ([`CpuPool::inline`]),
//! which costs nothing. Handing a job to a blocking thread costs a thread switch each way
//! (`cargo bench -p tollgate -- cpu_pool`; figures in docs/PERFORMANCE.md).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct CpuPool {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    Inline,
    Blocking {
        turns: Arc<Semaphore>,
        max_wait: Duration,
    },
}

/// The job did not run: the caller answers "retry later".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("verification is busy, retry later")]
    NoTurn,
    #[error("verification was cancelled")]
    Cancelled,
}

impl CpuPool {
    /// How long a caller may wait for a turn: long enough for a burst of genuine callbacks
    /// to be checked one per CPU (each takes well under a millisecond), short enough to
    /// answer before a provider gives up on the request (WeChat Pay waits 5 s).
    pub const MAX_WAIT: Duration = Duration::from_secs(3);

    /// Runs every job in place (Lambda).
    pub fn inline() -> Self {
        CpuPool { mode: Mode::Inline }
    }

    /// At most `jobs` at once on tokio's blocking threads; a caller waits up to `max_wait`.
    pub fn blocking(jobs: usize, max_wait: Duration) -> Self {
        CpuPool {
            mode: Mode::Blocking {
                turns: Arc::new(Semaphore::new(jobs.max(1))),
                max_wait,
            },
        }
    }

    /// The local server's pool: one job per CPU.
    pub fn per_cpu() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::blocking(cpus, Self::MAX_WAIT)
    }

    /// Runs `job` and returns what it returned. A panic in `job` is a panic of the caller, as
    /// if it had run in place.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (turns, max_wait) = match &self.mode {
            Mode::Inline => return Ok(job()),
            Mode::Blocking { turns, max_wait } => (turns, *max_wait),
        };
        let turn = match tokio::time::timeout(max_wait, turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) | Err(_) => return Err(Busy::NoTurn),
        };
        // The turn moves into the job: a caller that goes away (the client hung up) does not
        // free it before the work is done.
        let handle = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            job()
        });
        match handle.await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Busy::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inline_runs_on_the_callers_thread() {
        let caller = std::thread::current().id();
        let ran_on = CpuPool::inline()
            .run(|| std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(ran_on, caller);
    }

    #[tokio::test]
    async fn blocking_runs_off_the_callers_thread() {
        let caller = std::thread::current().id();
        let ran_on = CpuPool::blocking(2, Duration::from_secs(1))
            .run(|| std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
    }

    /// With every turn taken, a caller waits `max_wait` and is then told to retry later;
    /// once the turn is back, work runs again. Time is paused: the wait is not slept. (The
    /// turn is held directly: a running blocking job would keep paused time from advancing.)
    #[tokio::test(start_paused = true)]
    async fn a_caller_without_a_turn_within_the_wait_is_busy() {
        let pool = CpuPool::blocking(1, Duration::from_secs(3));
        let Mode::Blocking { turns, .. } = &pool.mode else {
            panic!("a blocking pool")
        };
        let held = turns.clone().acquire_owned().await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(pool.run(|| 1).await, Err(Busy::NoTurn));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(held);
        assert_eq!(pool.run(|| 2).await, Ok(2));
    }

    #[tokio::test]
    #[should_panic(expected = "job failed")]
    async fn a_panicking_job_panics_the_caller() {
        let _ = CpuPool::blocking(1, Duration::from_secs(1))
            .run(|| panic!("job failed"))
            .await;
    }
}
