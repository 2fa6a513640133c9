//! `junction check|test|graph|routes` against real project directories.

mod common;

use common::{junction, project, root};

#[test]
fn the_masterdeal_project_checks_clean() {
    let (code, out, err) = junction(&["check", root().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("ok: 22 routes, 9 connectors"), "{out}");
}

#[test]
fn check_reports_every_error_with_file_line_col() {
    let dir = project(&[
        (
            "junction.yaml",
            "listen: 127.0.0.1:0\nstore: ${NOPE_STORE_UNSET}\nconectors: {}\nconnectors:\n  api: { kind: htp, base_url: \"http://x\" }\n  crm: { kind: http, base_url: \"http://x\", timout: 5s }\nbus_max_backlog: 0\ngateway: { max_connections: 0 }\n",
        ),
        (
            "routes/a.yaml",
            "route: a\nfrom:\n  http: { method: POST, path: /a, auth: none }\nsteps:\n  - transfrom: x.rhai\n  - transform: missing.rhai\n  - transform: broken.rhai\n  - to: { connector: crn }\n  - validate: bad.json\n",
        ),
        ("routes/b.yaml", "route: a\nfrom:\n  http: { method: POST, path: /b, auth: none }\n"),
        ("routes/c.yaml", "route: c\nfrom:\n  http: { method: GET, path: \"/c/{id}\", auth: none }\n"),
        ("routes/d.yaml", "route: d\nfrom:\n  http: { method: GET, path: \"/c/{key}\", auth: none }\n"),
        ("routes/e.yaml", "route: e\nroute: e2\nfrom: { schedule: { every: 5m } }\n"),
        ("routes/f.yaml", "route: f\nfrom: { schedule: { every: soon } }\n"),
        ("routes/g.yaml", "route: g\nfrom: { http: { method: POST, path: /g, auth: jwt } }\n"),
        ("routes/h.yaml", "route: h\nfrom: { bus: { topic: t } }\nmax_in_flight: many\n"),
        ("routes/j.yaml", "route: j\nfrom: { bus: { topic: t } }\nfrom_typo: 1\nmax_in_flite: 2\n"),
        ("routes/k.yaml", "route: k\nfrom: { bus: { topic: t, group: j } }\n"),
        (
            "routes/l.yaml",
            "route: l\nfrom: { bus: { topic: u } }\nsteps:\n  - aggregate: { key: body.id, size: 2, max_groups: 0 }\n",
        ),
        (
            "routes/i.yaml",
            "route: i\nfrom: { bus: { topic: t } }\nsteps:\n  - request: { connector: bus, topic: x }\n  - to: { connector: crm, method: FETCH }\n",
        ),
        ("transforms/broken.rhai", "let x = 1;\nlet y = ;\nx\n"),
        ("schemas/bad.json", "{\"type\": 12}"),
    ]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 1, "{err}");
    let expected = [
        "junction.yaml:2:8: environment variable `NOPE_STORE_UNSET` is not set and has no default",
        "junction.yaml:3:1: unknown field `conectors` (did you mean `connectors`?)",
        "junction.yaml:5:16: unknown connector kind `htp` (did you mean `http`?)",
        "junction.yaml:6:44: unknown field `timout`",
        "(did you mean `timeout`?)",
        "routes/a.yaml:5:5: unknown variant `transfrom`",
        "(did you mean `transform`?)",
        "routes/a.yaml:6:16: cannot read transform transforms/missing.rhai",
        "transforms/broken.rhai:2:9: Rhai: Unexpected ';'",
        "routes/a.yaml:8:22: unknown connector `crn`",
        "routes/a.yaml:9:15: schema bad.json is not a valid JSON Schema",
        "routes/b.yaml:1:8: duplicate route id `a`; first defined at routes/a.yaml:1:8",
        "routes/d.yaml:3:30: GET /c/{key} is already served by route `c`",
        "routes/e.yaml:2:1: duplicate mapping key: route",
        "routes/f.yaml:2:28: `soon` is not a duration",
        "routes/g.yaml:2:47: unknown auth scheme `jwt`",
        "routes/h.yaml:3:16: invalid type: string \"many\", expected usize",
        "routes/i.yaml:4:14: the bus has no request/reply; use `to` to publish",
        "routes/j.yaml:3:1: unknown field `from_typo`",
        "routes/j.yaml:4:1: unknown field `max_in_flite` (did you mean `max_in_flight`?)",
        "routes/k.yaml:1:8: route `j` already consumes topic t as group j; give this route its own `group`",
        "routes/i.yaml:5:9: connector `crm` has errors in junction.yaml",
        "junction.yaml:7:18: bus_max_backlog is 0, so nothing could ever be published",
        "routes/l.yaml:4:5: aggregate `max_groups` is 0",
        "junction.yaml:8:29: gateway max_connections is 0",
    ];
    for line in expected {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    assert!(err.trim_end().ends_with("errors found"), "{err}");
}

/// The `cache:` setting is checked where it is written, and every kind the cache opens passes:
/// `memory`, one Redis, a Redis Cluster's nodes (nothing is connected to at check).
#[test]
fn the_cache_setting_takes_memory_redis_and_a_redis_cluster() {
    let check = |cache: &str| {
        let root = format!("listen: 127.0.0.1:0\ncache: {cache}\nroutes: [routes/]\n");
        let dir = project(&[("junction.yaml", &root), ("routes/.keep", "")]);
        junction(&["check", dir.path().to_str().expect("utf-8 path")], &[])
    };
    for cache in ["memory", "redis://127.0.0.1:6379", "\"redis+cluster://127.0.0.1:7000,127.0.0.1:7001\""] {
        let (code, out, err) = check(cache);
        assert_eq!(code, 0, "{cache}: {out}{err}");
    }
    let (code, _, err) = check("memcached://127.0.0.1:11211");
    assert_eq!(code, 1);
    assert!(err.contains("junction.yaml:2:8: unknown cache `memcached://127.0.0.1:11211`"), "{err}");
    assert!(err.contains("redis+cluster://host:7000,host:7001"), "{err}");
}

#[test]
fn route_tests_pass_and_failures_show_a_diff() {
    let (code, out, err) = junction(&["test", root().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("33 passed, 0 failed"), "{out}");

    let (code, out, err) = junction(&["test", root().join("examples/eip").to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("15 passed, 0 failed"), "{out}");

    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        ("routes/r.yaml", "route: r\nfrom: { bus: { topic: t } }\nsteps:\n  - transform: { script: \"body.n * 2\" }\n"),
        (
            "route-tests/r.yaml",
            "route: r\ncases:\n  - name: doubles\n    input: { body: { n: 2 } }\n    expect: { output: [5] }\n",
        ),
    ]);
    let (code, out, _) = junction(&["test", dir.path().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED route-tests/r.yaml :: doubles"), "{out}");
    assert!(out.contains("  - ") && out.contains("5") && out.contains("  + ") && out.contains("4"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn graph_draws_endpoints_routes_and_topics() {
    let (code, out, _) = junction(&["graph", root().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("flowchart LR\n"), "{out}");
    for edge in [
        "http_POST__webhooks_crm_deals --> route_crm_deal_won",
        "route_crm_deal_won <-->|\"masterdeal upsert_deal_by_external_id\"| connector_masterdeal",
        "topic_masterdeal_deal --> route_master_deal_log",
    ] {
        assert!(out.contains(edge), "missing {edge:?} in:\n{out}");
    }
    // The routes' folders are the diagram's boxes.
    let gateway =
        out.split("subgraph folder_routes_gateway[\"routes/gateway\"]\n").nth(1).expect("the gateway's routes");
    let gateway = gateway.split("  end\n").next().unwrap_or_default();
    assert!(gateway.contains("route_crm_deal_won") && !gateway.contains("route_draft_media_plan"), "{out}");
    assert!(out.contains("subgraph folder_routes_worker[\"routes/worker\"]"), "{out}");
}

/// Route folders are read with their subfolders (a project groups its routes), hidden ones left out.
#[test]
fn route_folders_are_read_with_their_subfolders() {
    let route = |id: &str| format!("route: {id}\nfrom: {{ bus: {{ topic: t }} }}\nsteps:\n  - log: x\n");
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        ("routes/a.yaml", &route("a")),
        ("routes/worker/b.yaml", &route("b")),
        ("routes/worker/deeper/c.yml", &route("c")),
        ("routes/worker/.d.yaml", "not: a route"),
        ("routes/.git/e.yaml", "not: a route"),
    ]);
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, out, err) = junction(&["check", path], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 3 routes"), "{out}");
    let (_, out, _) = junction(&["routes", path], &[]);
    assert!(out.contains("routes/worker/deeper/c.yml"), "{out}");
}

#[test]
fn routes_lists_ids_sources_and_versions() {
    let (code, out, _) = junction(&["routes", root().to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("crm-deal-won") && out.contains("http POST /webhooks/crm/deals (async)"), "{out}");
    assert!(out.contains("bus masterdeal.deal"), "{out}");
}

#[test]
fn help_is_everywhere() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["test", "--help"],
        &["dead-letters", "list", "--help"],
        &["bus", "groups", "--help"],
        &["bus", "forget-group", "--help"],
    ] {
        let (code, out, _) = junction(args, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

/// `junction bus groups` shows a consumer group no route reads any more, a start warns of it,
/// and `junction bus forget-group` lets its topic go.
#[tokio::test]
async fn consumer_groups_no_route_reads_are_shown_and_can_be_forgotten() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/feed.yaml",
            "route: feed\nfrom: { http: { method: POST, path: /feed, auth: none, async: true } }\nsteps:\n  - log: \"fed ${body.n}\"\n",
        ),
    ]);
    let (_tmp, store) = common::sqlite_store();
    let env = [("JUNCTION_STORE", store.as_str())];
    let path = dir.path().to_str().expect("utf-8 path");
    let j = common::Junction::start(dir.path(), &env);
    let resp = reqwest::Client::new().post(j.url("/feed")).body("{\"n\": 1}").send().await.expect("send");
    assert_eq!(resp.status(), 202);
    j.wait_for_log("fed 1", std::time::Duration::from_secs(5));
    assert!(j.terminate().success());
    let (code, out, err) = junction(&["bus", "groups", path], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("junction.http.feed  feed  committed") && !out.contains("no route"), "{out}");

    // The route goes: its group stays, and says so.
    std::fs::write(
        dir.path().join("routes/feed.yaml"),
        "route: feed\nfrom: { http: { method: POST, path: /feed, auth: none } }\n",
    )
    .expect("rewrite");
    let (_, out, _) = junction(&["bus", "groups", path], &env);
    assert!(out.contains("0 to process  (no route reads it)"), "{out}");
    let j = common::Junction::start(dir.path(), &env);
    j.wait_for_log("no loaded route reads this consumer group", std::time::Duration::from_secs(5));
    drop(j);

    let (code, out, err) = junction(&["bus", "forget-group", "junction.http.feed", "feed", path], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("forgot consumer group feed on junction.http.feed"), "{out}");
    let (code, _, err) = junction(&["bus", "forget-group", "junction.http.feed", "feed", path], &env);
    assert_eq!(code, 1);
    assert!(err.contains("no consumer group feed on junction.http.feed"), "{err}");
    let (_, _, err) = junction(&["bus", "groups", path], &env);
    assert!(err.contains("0 consumer groups"), "{err}");
}
