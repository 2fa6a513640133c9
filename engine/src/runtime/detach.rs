//! A future its caller may stop waiting for without cancelling it.
//!
//! A request/reply run must not stop halfway when the caller hangs up or its wait times out:
//! that would lose the message. Spawning every run as a task of its own guarantees that, but
//! costs a task and, often, a wake-up of another worker thread on every request. Instead the
//! run is polled in place, and handed to the runtime only if it is dropped unfinished, which
//! happens rarely.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// `fut`, polled by whoever awaits it; dropped before it finished, it runs to its end as a
/// task of its own. A panic inside it becomes `Err` with the panic's payload.
pub fn detach_on_drop<F>(fut: F) -> DetachOnDrop<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    DetachOnDrop { fut: Some(Box::pin(fut)) }
}

pub struct DetachOnDrop<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fut: Option<Pin<Box<F>>>,
}

/// What a run that panicked left behind.
pub type Panicked = Box<dyn Any + Send>;

impl<F> Future for DetachOnDrop<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            panic!("DetachOnDrop polled after it finished");
        };
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                self.fut = None;
                Poll::Ready(Ok(out))
            }
            // A future that panicked must not be polled again, nor handed on.
            Err(payload) => {
                self.fut = None;
                Poll::Ready(Err(payload))
            }
        }
    }
}

impl<F> Drop for DetachOnDrop<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(fut);
            }
            // Dropped outside a runtime (the runtime itself is going away): nothing can run it.
            Err(_) => tracing::warn!("an unfinished run was dropped outside the runtime"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn finishes_in_place() {
        assert_eq!(detach_on_drop(async { 7 }).await.ok(), Some(7));
    }

    #[tokio::test]
    async fn finishes_after_its_caller_stops_waiting() {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, (tx, rx)) = (done.clone(), tokio::sync::oneshot::channel::<()>());
        let run = detach_on_drop(async move {
            let _ = rx.await;
            flag.store(true, Ordering::SeqCst);
        });
        // The caller gives up before the run can finish.
        assert!(tokio::time::timeout(Duration::from_millis(20), run).await.is_err());
        assert!(!done.load(Ordering::SeqCst));
        tx.send(()).ok();
        for _ in 0..100 {
            if done.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the abandoned run never finished");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_crash() {
        let run = detach_on_drop(async {
            if true {
                panic!("boom");
            }
        });
        let payload = run.await.expect_err("the panic comes back as an error");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }
}
