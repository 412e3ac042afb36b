//! The whole-request deadline, which never answers "timed out" for work that was committed.
//!
//! A timeout that simply drops the request future can fire between a registration's
//! `INSERT` and its answer: the row exists, the client is told 408, and its retry is told
//! `taken`. Instead, code about to write calls [`commit_started`]; from then on the deadline
//! no longer cuts the request off, and the client gets the real outcome. The write itself is
//! bounded by the database pool's timeouts. Before that point nothing has been written, so
//! cutting the request off (and cancelling a queued hash) is safe.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

tokio::task_local! {
    static COMMITTING: Arc<AtomicBool>;
}

/// Runs `fut` with a deadline. `Err(())` means the deadline passed before any commit began
/// (and `fut` was dropped); once [`commit_started`] was called inside it, `fut` runs to the end.
pub async fn run<F: Future>(timeout: Duration, fut: F) -> Result<F::Output, ()> {
    let committing = Arc::new(AtomicBool::new(false));
    let fut = COMMITTING.scope(committing.clone(), fut);
    tokio::pin!(fut);
    tokio::select! {
        out = &mut fut => Ok(out),
        () = tokio::time::sleep(timeout) => {
            // `fut` is not being polled here, so the flag cannot change under us.
            if committing.load(Ordering::Acquire) {
                tracing::info!("request deadline passed during a commit; finishing it");
                Ok(fut.await)
            } else {
                Err(())
            }
        }
    }
}

/// Marks the current request as committing: its deadline will let it finish. A no-op outside
/// [`run`] (tools, tests of the service).
pub fn commit_started() {
    let _ = COMMITTING.try_with(|flag| flag.store(true, Ordering::Release));
}

/// Undoes [`commit_started`] when the commit turned out to write nothing (a conditional
/// write that matched no row): the deadline may cut the request off again. If it already
/// passed during the commit, the request runs to its end as [`run`] promised.
pub fn commit_abandoned() {
    let _ = COMMITTING.try_with(|flag| flag.store(false, Ordering::Release));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_before_a_commit_is_cut_off() {
        let out = run(Duration::from_millis(20), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
        assert!(out.is_err());
    }

    #[tokio::test]
    async fn a_started_commit_is_finished_and_answered() {
        let out = run(Duration::from_millis(20), async {
            commit_started();
            tokio::time::sleep(Duration::from_millis(100)).await;
            "committed"
        })
        .await;
        assert_eq!(out, Ok("committed"));
    }

    #[tokio::test]
    async fn an_abandoned_commit_is_cut_off_again() {
        let out = run(Duration::from_millis(20), async {
            commit_started();
            commit_abandoned();
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
        assert!(out.is_err());
    }
}
