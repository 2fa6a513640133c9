//! The audit log's contract, run against SQLite and Postgres alike.

use chrono::{DateTime, Duration, Utc};
use sqlx::Executor;

use crate::store::test_support::on_both_backends;
use crate::store::{AuditEntry, AuditFilter, AuditRecord, Backend, Store};

on_both_backends!(
    audit_lists_newest_first,
    audit_filters_by_actor_and_outcome,
    audit_action_filter_is_a_literal_prefix,
    audit_filters_by_time,
    audit_pages_by_before_id_without_gaps,
    audit_limit_defaults_to_100_and_caps_at_1000,
    audit_purge_removes_only_older_entries,
    audit_append_many_is_one_transaction,
    audit_text_round_trips,
);

fn entry(actor: &str, action: &str, outcome: &str) -> AuditEntry {
    AuditEntry {
        actor: actor.to_owned(),
        actor_kind: "api_key".to_owned(),
        action: action.to_owned(),
        target: None,
        outcome: outcome.to_owned(),
        status: None,
        request_id: None,
        detail: None,
    }
}

fn entry_of(r: &AuditRecord) -> AuditEntry {
    AuditEntry {
        actor: r.actor.clone(),
        actor_kind: r.actor_kind.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        outcome: r.outcome.clone(),
        status: r.status,
        request_id: r.request_id.clone(),
        detail: r.detail.clone(),
    }
}

async fn append(store: &Store, e: &AuditEntry) -> i64 {
    store.audit_append(e).await.expect("audit_append")
}

async fn list(store: &Store, filter: AuditFilter) -> Vec<AuditRecord> {
    store.audit_list(&filter).await.expect("audit_list")
}

fn ids(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.id).collect()
}

/// A fixed time on a whole millisecond, the store's resolution.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000).expect("in range")
}

/// The API has no update; the tests move entries back in time behind its back.
async fn backdate(store: &Store, id: i64, at: DateTime<Utc>) {
    sqlx::query("UPDATE audit SET at = $1 WHERE id = $2")
        .bind(at.timestamp_millis())
        .bind(id)
        .execute(store.pool())
        .await
        .expect("backdate");
}

async fn audit_lists_newest_first(store: Store) {
    let before = Utc::now() - Duration::seconds(1);
    let first = entry("key-1", "POST /webhooks/crm/deals", "ok");
    let full = AuditEntry {
        actor_kind: "admin_token".to_owned(),
        target: Some("dl-0193".to_owned()),
        status: Some(403),
        request_id: Some("req-42".to_owned()),
        detail: Some("route is paused".to_owned()),
        ..entry("admin", "admin.replay", "denied")
    };
    let a = append(&store, &first).await;
    let b = append(&store, &full).await;
    assert!(b > a, "ids grow: {a} then {b}");

    let all = list(&store, AuditFilter::default()).await;
    assert_eq!(ids(&all), [b, a]);
    assert_eq!(entry_of(&all[0]), full);
    assert_eq!(entry_of(&all[1]), first);
    assert!(all.iter().all(|r| r.at > before && r.at <= Utc::now()), "{all:?}");
}

async fn audit_filters_by_actor_and_outcome(store: Store) {
    let a = append(&store, &entry("alice", "GET /x", "ok")).await;
    let b = append(&store, &entry("bob", "GET /x", "denied")).await;
    let c = append(&store, &entry("alice", "GET /x", "denied")).await;

    let by = |actor: Option<&str>, outcome: Option<&str>| AuditFilter {
        actor: actor.map(str::to_owned),
        outcome: outcome.map(str::to_owned),
        ..AuditFilter::default()
    };
    assert_eq!(ids(&list(&store, by(Some("alice"), None)).await), [c, a]);
    assert_eq!(ids(&list(&store, by(None, Some("denied"))).await), [c, b]);
    assert_eq!(ids(&list(&store, by(Some("alice"), Some("denied"))).await), [c]);
    assert!(list(&store, by(Some("carol"), None)).await.is_empty());
}

/// The prefix comes from a query string: `%` and `_` must not act as wildcards.
async fn audit_action_filter_is_a_literal_prefix(store: Store) {
    let deals = append(&store, &entry("k", "POST /webhooks/crm/deals", "ok")).await;
    let crm = append(&store, &entry("k", "POST /webhooks/crm", "ok")).await;
    append(&store, &entry("k", "GET /webhooks/crm/deals", "ok")).await;
    let reload = append(&store, &entry("k", "admin.reload", "ok")).await;
    let underscore = append(&store, &entry("k", "admin_reload", "ok")).await;
    let percent = append(&store, &entry("k", "100%_done", "ok")).await;

    let prefix = |p: &str| AuditFilter { action: Some(p.to_owned()), ..AuditFilter::default() };
    assert_eq!(ids(&list(&store, prefix("POST /webhooks/crm")).await), [crm, deals]);
    assert_eq!(ids(&list(&store, prefix("admin.")).await), [reload]);
    assert_eq!(ids(&list(&store, prefix("admin_")).await), [underscore]);
    assert_eq!(ids(&list(&store, prefix("100%_")).await), [percent]);
    assert!(list(&store, prefix("%")).await.is_empty());
    assert!(list(&store, prefix("post")).await.is_empty(), "the prefix is case-sensitive");
    assert_eq!(list(&store, prefix("")).await.len(), 6);
}

/// `since` is inclusive and `until` exclusive, so adjacent windows split entries cleanly.
async fn audit_filters_by_time(store: Store) {
    let mut appended = Vec::new();
    for s in 0..4 {
        let id = append(&store, &entry("k", "GET /x", "ok")).await;
        backdate(&store, id, t0() + Duration::seconds(s)).await;
        appended.push(id);
    }
    let window = |since: Option<i64>, until: Option<i64>| AuditFilter {
        since: since.map(|s| t0() + Duration::seconds(s)),
        until: until.map(|s| t0() + Duration::seconds(s)),
        ..AuditFilter::default()
    };
    let [a, b, c, d] = appended[..] else { panic!("four entries") };
    assert_eq!(ids(&list(&store, window(Some(1), None)).await), [d, c, b]);
    assert_eq!(ids(&list(&store, window(None, Some(2))).await), [b, a]);
    assert_eq!(ids(&list(&store, window(Some(1), Some(3))).await), [c, b]);
    assert!(list(&store, window(Some(2), Some(2))).await.is_empty());

    let listed = list(&store, window(Some(3), None)).await;
    assert_eq!(listed[0].at, t0() + Duration::seconds(3));
}

async fn audit_pages_by_before_id_without_gaps(store: Store) {
    let mut all = Vec::new();
    for n in 0..25 {
        let actor = if n % 3 == 0 { "odd-one" } else { "regular" };
        all.push((actor, append(&store, &entry(actor, "GET /x", "ok")).await));
    }
    all.reverse();

    for (actor, page_size) in [(None, 7), (None, 1), (Some("odd-one"), 4)] {
        let expected: Vec<i64> = all.iter().filter(|(a, _)| actor.is_none_or(|x| x == *a)).map(|(_, id)| *id).collect();
        let mut seen = Vec::new();
        let mut before_id = None;
        loop {
            let filter =
                AuditFilter { actor: actor.map(str::to_owned), before_id, limit: page_size, ..AuditFilter::default() };
            let page = list(&store, filter).await;
            let Some(last) = page.last() else { break };
            assert!(page.len() <= page_size as usize);
            before_id = Some(last.id);
            seen.extend(ids(&page));
        }
        assert_eq!(seen, expected, "actor {actor:?}, pages of {page_size}");
    }
}

async fn audit_limit_defaults_to_100_and_caps_at_1000(store: Store) {
    let batch: Vec<_> = (0..1005).map(|n| entry("k", &format!("GET /{n}"), "ok")).collect();
    store.audit_append_many(&batch).await.expect("append_many");

    let limited = |limit: u32| AuditFilter { limit, ..AuditFilter::default() };
    assert_eq!(list(&store, limited(0)).await.len(), 100);
    assert_eq!(list(&store, limited(1000)).await.len(), 1000);
    assert_eq!(list(&store, limited(u32::MAX)).await.len(), 1000);
    let three = list(&store, limited(3)).await;
    let actions: Vec<_> = three.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["GET /1004", "GET /1003", "GET /1002"]);
}

async fn audit_purge_removes_only_older_entries(store: Store) {
    let cutoff = t0() + Duration::days(30);
    let mut kept = Vec::new();
    for (n, at) in
        [t0(), cutoff - Duration::milliseconds(1), cutoff, cutoff + Duration::days(1)].into_iter().enumerate()
    {
        let id = append(&store, &entry("k", &format!("GET /{n}"), "ok")).await;
        backdate(&store, id, at).await;
        if at >= cutoff {
            kept.push(id);
        }
    }
    let fresh = append(&store, &entry("k", "GET /now", "ok")).await;
    kept.push(fresh);
    kept.reverse();

    assert_eq!(store.audit_purge_before(cutoff).await.expect("purge"), 2);
    assert_eq!(ids(&list(&store, AuditFilter::default()).await), kept);
    assert_eq!(store.audit_purge_before(cutoff).await.expect("purge again"), 0);
}

/// All 500 land, in order; and when one row fails, none of the batch does.
async fn audit_append_many_is_one_transaction(store: Store) {
    let batch: Vec<_> = (0..500).map(|n| entry("gateway", &format!("POST /{n}"), "ok")).collect();
    store.audit_append_many(&batch).await.expect("append_many");
    store.audit_append_many(&[]).await.expect("an empty batch is a no-op");

    let everything = AuditFilter { limit: 1000, ..AuditFilter::default() };
    let mut stored = list(&store, everything.clone()).await;
    stored.reverse();
    assert_eq!(stored.iter().map(entry_of).collect::<Vec<_>>(), batch);
    assert!(stored.iter().all(|r| r.at == stored[0].at), "one batch, one time");

    reject_actor(&store, "boom").await;
    let mut poisoned = batch.clone();
    poisoned[450] = entry("boom", "POST /450", "ok");
    store.audit_append_many(&poisoned).await.expect_err("the trigger rejects row 450");
    assert_eq!(list(&store, everything.clone()).await.len(), 500, "rows before 450 were rolled back");

    append(&store, &entry("gateway", "POST /after", "ok")).await;
    assert_eq!(list(&store, everything).await.len(), 501, "the store still writes after a failed batch");
}

/// Makes inserts of `actor` fail, to see a batch roll back.
async fn reject_actor(store: &Store, actor: &str) {
    let statements = match store.backend() {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER audit_reject BEFORE INSERT ON audit WHEN NEW.actor = '{actor}' \
             BEGIN SELECT RAISE(ABORT, 'rejected by test'); END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION audit_reject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.actor = '{actor}' THEN RAISE EXCEPTION 'rejected by test'; END IF; RETURN NEW; END $$"
            ),
            "CREATE TRIGGER audit_reject BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_reject()"
                .to_owned(),
        ],
    };
    for sql in statements {
        store.pool().execute(sqlx::AssertSqlSafe(sql)).await.expect("installing the test trigger");
    }
}

async fn audit_text_round_trips(store: Store) {
    let tricky = AuditEntry {
        actor: "O'Brien \"the\" admin".to_owned(),
        actor_kind: "basic".to_owned(),
        action: "POST /webhooks/crm/d'eals?x=\"1\"".to_owned(),
        target: Some("маршрут-路由-🚀".to_owned()),
        outcome: "failed".to_owned(),
        status: Some(502),
        request_id: Some("req-😀".to_owned()),
        detail: Some("'; DROP TABLE audit; --\\ back\\slash\nnew line\ttab".to_owned()),
    };
    append(&store, &tricky).await;
    let mut batched = tricky.clone();
    batched.action = "admin.ünïcödé".to_owned();
    store.audit_append_many(std::slice::from_ref(&batched)).await.expect("append_many");

    let all = list(&store, AuditFilter::default()).await;
    assert_eq!(all.iter().map(entry_of).collect::<Vec<_>>(), [batched.clone(), tricky.clone()]);

    let by_actor = AuditFilter { actor: Some(tricky.actor.clone()), ..AuditFilter::default() };
    assert_eq!(list(&store, by_actor).await.len(), 2);
    let by_prefix = |p: &str| AuditFilter { action: Some(p.to_owned()), ..AuditFilter::default() };
    assert_eq!(entry_of(&list(&store, by_prefix("POST /webhooks/crm/d'")).await[0]), tricky);
    assert_eq!(entry_of(&list(&store, by_prefix("admin.ün")).await[0]), batched);
}
