//! Threads that run a request's CPU work at a lower priority than the
//! async workers, so that a read never waits behind it for a core.
//!
//! Parsing ingested batches (gzip, JSON, validation: ~0.4 ms of CPU per
//! 100 events, a sixth of the workers' time under the soak) on the async
//! workers made a customer view that arrived meanwhile wait for a worker,
//! and the operating system shared the cores among them as equals. Here
//! the batch waits instead: the threads run at the writer's nice value, and
//! the workers (nice 0) take a core from them whenever a request needs one.
//! Under more load than the cores serve, ingestion slows first, as the
//! writer's priority already says.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

type Task = Box<dyn FnOnce() + Send>;

/// A fixed set of threads at a lower priority, fed through one queue.
pub(crate) struct LowPriority {
    tasks: mpsc::Sender<Task>,
}

impl LowPriority {
    /// Starts `threads` threads named `name` at Linux nice value `nice`
    /// (elsewhere at normal priority). They end when the pool is dropped.
    pub(crate) fn start(threads: usize, nice: i32, name: &str) -> std::io::Result<LowPriority> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    crate::engine::lower_this_threads_priority(nice);
                    loop {
                        let next = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(p) => p.into_inner().recv(),
                        };
                        let Ok(task) = next else { return };
                        // A panicking task loses its answer (its caller
                        // sees `None`), not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(task));
                    }
                })?;
        }
        Ok(LowPriority { tasks: tx })
    }

    /// Runs `f` on one of the threads and waits for it without holding an
    /// async worker; `None` when `f` panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_pool_and_a_panic_loses_only_its_answer() {
        let pool = LowPriority::start(2, 10, "lifecycle-test").unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert_eq!(name, Some(Some("lifecycle-test".to_string())));
        let lost: Option<u32> = pool.run(|| panic!("a task's bug")).await;
        assert_eq!(lost, None);
        // Both threads still serve (more tasks than threads, in parallel).
        let all = futures_util::future::join_all((0..8).map(|i| pool.run(move || i * 2))).await;
        assert_eq!(all, (0..8).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }
}
