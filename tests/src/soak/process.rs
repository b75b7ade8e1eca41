//! The local server as a process that can be killed: `tollgate::local::serve` on a runtime
//! of its own, over the store the soak built (the durable table's stand-in, which outlives
//! every process) and an in-process queue kept in a `LOCAL_QUEUE_FILE`. A kill shuts the
//! runtime down without the graceful path: every task is dropped where it stands (requests
//! half served, a job half run), and nothing is saved on the way out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tollgate::app::{App, Queue};
use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::queue::MemoryQueue;
use tollgate::store::Store;

pub struct Process {
    pub app: Arc<App>,
    pub queue: Arc<MemoryQueue>,
    pub base: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Process {
    /// Starts the server; the port is bound before this returns, so requests sent at once
    /// wait in the listen backlog until it accepts them.
    pub fn start(
        config: Config,
        store: Arc<dyn Store>,
        clock: &ManualClock,
        queue_file: PathBuf,
    ) -> Process {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let queue = Arc::new(MemoryQueue::new(Arc::new(clock.clone())));
        let mut app = App::new(config, store, Arc::new(clock.clone())).expect("soak app");
        app.queue = Some(Queue::Memory(queue.clone()));
        let app = Arc::new(app);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let a = app.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            // Never shut down gracefully: the process only ever dies by `kill`.
            let r =
                tollgate::local::serve(a, listener, Some(queue_file), std::future::pending()).await;
            if let Err(e) = r {
                eprintln!("soak server did not start: {e}");
            }
        });
        Process {
            app,
            queue,
            base,
            runtime: Some(runtime),
        }
    }

    /// Starts `f` on the server's runtime, as its own timers would; its handle answers an
    /// error if the process is killed before `f` finishes.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<T>> {
        self.runtime.as_ref().map(|rt| rt.spawn(f))
    }

    /// Kills the process: its runtime stops, every task is dropped at its next await.
    pub async fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            let _ =
                tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5)))
                    .await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
