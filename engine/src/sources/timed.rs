//! Drives a stateful step's timer (an aggregate's timeout): what it releases continues down
//! the route from the next step. On stop, everything it still holds is released.

use std::sync::Arc;
use std::time::Instant;

use super::SourceCx;
use crate::route::Route;

pub(super) async fn run(route: Arc<Route>, index: usize, mut cx: SourceCx) {
    let Some(timed) = route.pipeline.steps.get(index).and_then(|e| e.step.timed()) else { return };
    let mut tick = tokio::time::interval(timed.period());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::runtime::stopped(&mut cx.stop) => break,
        }
        let Some(timed) = route.pipeline.steps.get(index).and_then(|e| e.step.timed()) else { return };
        for msg in timed.expired(Instant::now()) {
            let Ok(permit) = route.permits.clone().acquire_owned().await else { return };
            let (route, store) = (route.clone(), cx.store.clone());
            tokio::spawn(async move {
                super::deliver_surely(&route, index + 1, msg, &store).await;
                drop(permit);
            });
        }
    }
    // Stopping: what is still held goes down the route now rather than vanish with the process.
    let Some(timed) = route.pipeline.steps.get(index).and_then(|e| e.step.timed()) else { return };
    for msg in timed.drain() {
        super::deliver_surely(&route, index + 1, msg, &cx.store).await;
    }
}
