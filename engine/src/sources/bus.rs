//! `from: bus` (and `async: true` http routes): consume a topic as a consumer group.

use std::sync::Arc;
use std::time::Duration;

use super::SourceCx;
use crate::route::Route;

pub(super) async fn consume(route: Arc<Route>, topic: String, group: String, mut cx: SourceCx) {
    let mut subscription = loop {
        match cx.bus.subscribe(&group, &topic, route.max_in_flight).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::error!(route = %route.id, topic, error = %e, "cannot subscribe; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = crate::runtime::stopped(&mut cx.stop) => return,
                }
            }
        }
    };
    loop {
        if !cx.paused.wait_while_paused(&route.id, &mut cx.stop).await {
            break;
        }
        let delivery = tokio::select! {
            d = subscription.recv() => d,
            () = crate::runtime::stopped(&mut cx.stop) => break,
        };
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(route = %route.id, topic, error = %e, "bus receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Ok(permit) = route.permits.clone().acquire_owned().await else { break };
        let (route, store) = (route.clone(), cx.store.clone());
        tokio::spawn(async move {
            let mut msg = delivery.message.clone();
            msg.meta.source.insert("topic".into(), delivery.topic.clone().into());
            msg.meta.source.insert("offset".into(), delivery.offset.into());
            super::deliver_surely(&route, 0, msg, &store).await;
            delivery.ack();
            drop(permit);
        });
    }
    // Stopping: let the messages in flight finish, then commit their acks before going.
    let all = u32::try_from(route.max_in_flight).unwrap_or(u32::MAX);
    let _drained = route.permits.acquire_many(all).await;
    if let Err(e) = subscription.flush().await {
        tracing::warn!(route = %route.id, topic, error = %e, "cannot commit acks on stop; those messages will be redelivered");
    }
}
