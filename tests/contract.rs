//! The API keeps its own contract: schemathesis (from PyPI, installed into `.venv` by
//! `./scripts/test`) drives the repository project from its own `/openapi.json` with every
//! check on, as a careful client would. A request the document allows may be refused for
//! the state of the data (404, 409), never for its shape; every answer is one the document
//! lists, with the headers HTTP requires.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Junction, root, sqlite_store};

/// Generated cases per operation: with 30 operations and every phase (coverage, fuzzing,
/// stateful), the run takes well under a minute on two cores.
const MAX_EXAMPLES: &str = "25";
/// Fixed so that a failure in CI reproduces locally with the same command.
const SEED: &str = "20";
const WEBHOOK_SECRET: &str = "contract-test-webhook-secret";

/// schemathesis's `st`: beside `$JUNCTION_PYTHON`, else in the repository's `.venv`.
fn schemathesis() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("JUNCTION_PYTHON")
        .map(|python| PathBuf::from(python).with_file_name("st"))
        .into_iter()
        .chain([root().join(".venv/bin/st")])
        .collect();
    for st in &candidates {
        if Command::new(st).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return st.clone();
        }
    }
    panic!(
        "no schemathesis (tried {candidates:?}): run ./scripts/test, which installs it into .venv, \
         or set JUNCTION_PYTHON to a Python whose bin/ has `st`"
    );
}

#[test]
fn the_api_answers_as_its_document_says() {
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&root(), &[("JUNCTION_STORE", &store), ("CRM_WEBHOOK_SECRET", WEBHOOK_SECRET)]);
    // schemathesis keeps its replay files under the working directory: a temporary one.
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = Command::new(schemathesis())
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(root().join("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(j.url("/openapi.json"))
        .args(["--url", &j.url("")])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--generation-database", "none", "--workers", "1", "--no-color"])
        // Below the API's rate limit (200/s), so no answer is a 429 the run caused itself.
        .args(["--rate-limit", "150/s"])
        .args(["--header", "x-api-key: dev-partner-key-change-me"])
        // Replaced by the body's real signature in the hooks (tests/schemathesis/hooks.py).
        .args(["--header", "x-signature: sign"])
        .env("SCHEMATHESIS_HOOKS", root().join("tests/schemathesis/hooks.py"))
        .env("CRM_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .output()
        .expect("schemathesis runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{report}\njunction's log:\n{}", j.logs());
}
