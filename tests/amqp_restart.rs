//! RabbitMQ restarted under a running Junction: the publisher and the consumer connect again
//! by themselves and nothing accepted is lost. A test binary of its own, since restarting the
//! broker breaks every connection to it (test binaries run one after another).

mod common;

use std::time::Duration;

use common::{Junction, amqp_url, project, rabbitmqctl, sqlite_store, tag};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_needs_no_restart_of_junction() {
    let t = tag();
    let url = amqp_url();
    let dir = project(&[
        ("junction.yaml", &format!("routes: [routes/]\nbus: \"{url}\"\n")),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: bus, topic: work-{t} }}\non_error:\n  retry: {{ attempts: 30, initial: 100ms, max: 1s }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{t}\nmax_in_flight: 1\nfrom: {{ bus: {{ topic: work-{t} }} }}\nsteps:\n  - delay: 200ms\n  - log: \"got n=${{body.n}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    j.wait_for_log("consuming from RabbitMQ", Duration::from_secs(30));
    let c = reqwest::Client::new();
    let post = |n: u32| c.post(j.url("/send")).body(format!("{{\"n\": {n}}}")).send();
    // Twenty accepted; the slow reader has most of them still queued when the broker stops.
    for n in 0..20 {
        let resp = post(n).await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    j.wait_for_log("got n=2;", Duration::from_secs(30));
    let _ = rabbitmqctl(&["stop_app"]);
    let _ = rabbitmqctl(&["start_app"]);
    let _ = rabbitmqctl(&["await_startup"]);
    for n in 20..25 {
        let resp = post(n).await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    for n in 0..25 {
        j.wait_for_log(&format!("got n={n};"), Duration::from_secs(90));
    }
    let logs = j.logs();
    assert!(logs.contains("consuming again") || logs.contains("cannot consume"), "{logs}");
}
