//! Runs connectors' background tasks. A task that must run once across instances (an outbox
//! relay, a poller) runs only while this instance holds its lease in the store: it renews the
//! lease a few times per time-to-live, stops the task the moment a renewal fails (another
//! instance may take it over once the lease expires), and gives the lease up when it stops,
//! so a successor need not wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connector::Task;
use crate::store::Store;

/// How long a lease holds without renewal: how long a dead holder's work waits for another.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the holder renews (and how often the others ask for the lease).
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Runs `task` until `stop`: at once, or while holding its lease.
pub(crate) fn spawn(task: Task, store: Store, holder: Arc<str>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    if task.once { tokio::spawn(under_lease(task, store, holder, stop)) } else { tokio::spawn((task.run)(stop)) }
}

async fn under_lease(task: Task, store: Store, holder: Arc<str>, mut stop: watch::Receiver<bool>) {
    loop {
        if !take(&task.name, &store, &holder, &mut stop).await {
            return;
        }
        tracing::info!(task = task.name, "lease taken: running here");
        let (stop_task, task_stop) = watch::channel(false);
        let mut run = tokio::spawn((task.run)(task_stop));
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.tick().await;
        let stopping = loop {
            tokio::select! {
                _ = renew.tick() => match store.lease(&task.name, &holder, LEASE_TTL).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(task = task.name, "lease lost to another instance: stopping here");
                        break false;
                    }
                    Err(error) => {
                        tracing::warn!(task = task.name, %error, "cannot renew the lease: stopping here until it is taken again");
                        break false;
                    }
                },
                ended = &mut run => {
                    if let Err(e) = ended {
                        tracing::error!(task = task.name, error = %e, "background task ended abnormally");
                    }
                    break true;
                }
                () = super::stopped(&mut stop) => break true,
            }
        };
        let _ = stop_task.send(true);
        let _ = run.await;
        if stopping {
            if let Err(error) = store.release_lease(&task.name, &holder).await {
                tracing::warn!(task = task.name, %error, "cannot give the lease up; it expires by itself");
            }
            return;
        }
    }
}

/// Waits until this instance holds the lease; false if `stop` came first.
async fn take(name: &str, store: &Store, holder: &str, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        match store.lease(name, holder, LEASE_TTL).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => tracing::warn!(task = name, %error, "cannot ask for the lease; asking again"),
        }
        if !super::slept(RENEW_EVERY, stop).await {
            return false;
        }
    }
}
