//! Drives a stateful step's timer (an aggregate's timeout): what it releases continues down
//! the route from the next step, and is settled (an aggregate forgets the group) once it is
//! delivered or dead-lettered. At start it first finishes what an earlier process released
//! but did not deliver. On stop it releases nothing: what the step holds stays in the store
//! and the next start carries on with it.

use std::sync::Arc;

use super::SourceCx;
use crate::route::Route;
use crate::steps::Released;

pub(super) async fn run(route: Arc<Route>, index: usize, mut cx: SourceCx) {
    let Some(timed) = route.pipeline.steps.get(index).and_then(|e| e.step.timed()) else { return };
    let mut tick = tokio::time::interval(timed.period());
    let mut due = timed.unfinished().await;
    loop {
        for released in due {
            let Ok(permit) = route.permits.clone().acquire_owned().await else { return };
            let (route, store) = (route.clone(), cx.store.clone());
            tokio::spawn(async move {
                let Released { msg, settle } = released;
                // What a timeout released exists only in this run: it is not left at a stop.
                let _ = super::deliver_surely(&route, index + 1, msg, &store, None).await;
                if let Some(settle) = settle {
                    settle.await;
                }
                drop(permit);
            });
        }
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::runtime::stopped(&mut cx.stop) => return,
        }
        due = timed.expired().await;
    }
}
