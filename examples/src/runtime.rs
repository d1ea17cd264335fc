//! Runtimes of `flow --ues N`: the servers get threads of their own, so their CPU time can
//! be read per thread name ([`crate::cpu::threads_cpu`]) apart from the UEs'.
//!
//! [`ServerThread`] is a current-thread tokio runtime driven by one named OS thread until it
//! is dropped. Every task spawned on its [`handle`](ServerThread::handle) (the actors' tasks
//! and the `mcptt-tls` connection tasks they start) runs on that one thread. Unlike a
//! one-worker multi-thread runtime, a current-thread runtime has no LIFO slot: a task woken
//! by the task that runs (an actor woken by the connection task that delivered a message)
//! goes to the back of the queue instead of running next, so every connection with bytes
//! waiting is read first and the actor handles them as one batch, writing once per
//! connection. On `flow --ues 1000 --concurrency 16` (the same crates built both ways) that
//! cut the servers' thread from 8.8 to 5.5-5.9 `writev` and from 3.4-3.6 to 1.1-1.3 `write`
//! (eventfd wake-ups) per UE, `recvfrom` (~14.5) and `epoll_wait` (~2.4-3.0) unchanged
//! (`perf stat -e 'syscalls:sys_enter_*' --per-thread`), at the same user-space
//! instruction count (callgrind).
//!
//! Blocking calls (`spawn_blocking`) still get threads of the same name, so they are counted
//! too. A blocking store call made from a task blocks the thread (there is nowhere else to
//! run the other tasks; see the actors' `blocking_io`), so stores doing network I/O (Redis)
//! are better served by a multi-thread runtime.
//!
//! ```
//! let rt = mcptt_examples::runtime::ServerThread::start("doc-servers").unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! rt.handle().spawn(async move {
//!     tx.send(std::thread::current().name().map(str::to_owned)).unwrap();
//! });
//! assert_eq!(rx.recv().unwrap().as_deref(), Some("doc-servers"));
//! ```

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A current-thread runtime running on one named thread until dropped.
#[derive(Debug)]
pub struct ServerThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Builds the runtime (I/O and timers enabled) and starts the thread `name` that drives
    /// it; its blocking threads carry the same name.
    ///
    /// # Errors
    /// When the runtime or the thread cannot be created.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .thread_name(name)
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Runs every spawned task until told to stop (or the sender is dropped).
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn the servers' tasks.
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_the_named_thread_and_stop_with_it() {
        let rt = ServerThread::start("rt-test-servers").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (guard, guarded) = oneshot::channel::<()>();
        let _task = rt.handle().spawn(async move {
            let _guard = guard;
            // Timers and sockets work here (both drivers are enabled).
            tokio::time::sleep(Duration::from_millis(1)).await;
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let named = std::thread::current().name().map(str::to_owned);
            tx.send((named, l.local_addr().is_ok())).unwrap();
            std::future::pending::<()>().await;
        });
        let (named, bound) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(named.as_deref(), Some("rt-test-servers"));
        assert!(bound);
        // Dropping stops the runtime although the task is still pending: the task is dropped
        // with it (its guard's receiver sees the sender gone, not a value).
        drop(rt);
        assert!(guarded.blocking_recv().is_err());
    }
}
