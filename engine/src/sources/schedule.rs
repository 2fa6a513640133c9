//! `from: schedule`: fires on an interval or a cron expression. The last fire time is kept as
//! a checkpoint, so a restart does not fire an interval early.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SourceCx;
use crate::message::Message;
use crate::route::{Route, Source, Trigger};

pub(super) async fn run(route: Arc<Route>, mut cx: SourceCx) {
    let Source::Schedule(schedule) = &route.source else { return };
    let key = format!("schedule:{}", route.id);
    let mut last: Option<DateTime<Utc>> = match cx.store.checkpoint_get(&key).await {
        Ok(v) => v.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|d| d.with_timezone(&Utc)),
        Err(e) => {
            tracing::warn!(route = %route.id, error = %e, "cannot read the schedule's checkpoint");
            None
        }
    };
    loop {
        let now = Utc::now();
        let Some(next) = next_fire(&schedule.trigger, last, now) else {
            tracing::error!(route = %route.id, "the cron expression never fires again");
            return;
        };
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        if !crate::runtime::slept(wait, &mut cx.stop).await {
            return;
        }
        last = Some(next);
        if let Err(e) = cx.store.checkpoint_put(&key, &next.to_rfc3339()).await {
            tracing::warn!(route = %route.id, error = %e, "cannot store the schedule's checkpoint");
        }
        if cx.paused.is(&route.id) {
            tracing::info!(route = %route.id, "route paused; skipping this tick");
            continue;
        }
        // A tick that finds the route still full is skipped, not queued: schedules must not pile up.
        let Ok(permit) = route.permits.clone().try_acquire_owned() else {
            tracing::warn!(route = %route.id, "previous runs still in flight; skipping this tick");
            continue;
        };
        let mut msg = Message::json(schedule.body.clone());
        msg.meta.source.insert("fired_at".into(), Value::String(next.to_rfc3339()));
        let (route, store) = (route.clone(), cx.store.clone());
        tokio::spawn(async move {
            // A fire is not left at a stop: nothing would deliver it again.
            let _ = super::deliver_surely(&route, 0, msg, &store, None).await;
            drop(permit);
        });
    }
}

/// The next fire time after `last` (or from `now` on the first run).
fn next_fire(trigger: &Trigger, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match trigger {
        Trigger::Every(every) => {
            let every = chrono::Duration::from_std(*every).ok()?;
            Some(match last {
                Some(l) if l + every > now => l + every,
                Some(_) => now,
                None => now + every,
            })
        }
        Trigger::Cron(cron) => cron.find_next_occurrence(&now, false).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_resumes_from_the_checkpoint() {
        let now = Utc::now();
        let every = Trigger::Every(Duration::from_secs(60));
        let last = now - chrono::Duration::seconds(10);
        assert_eq!(next_fire(&every, Some(last), now), Some(last + chrono::Duration::seconds(60)));
        assert_eq!(next_fire(&every, Some(now - chrono::Duration::seconds(600)), now), Some(now));
        assert_eq!(next_fire(&every, None, now), Some(now + chrono::Duration::seconds(60)));
    }

    #[test]
    fn cron_finds_the_next_minute() {
        let cron: croner::Cron = "* * * * *".parse().expect("valid cron");
        let now = Utc::now();
        let next = next_fire(&Trigger::Cron(Box::new(cron)), None, now).expect("fires");
        assert!(next > now && next - now <= chrono::Duration::seconds(60));
    }
}
