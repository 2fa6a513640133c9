//! Recorded replay for route tests (`junction test`): the `llm` connector runs for real —
//! package, checks, repairs, fallbacks — and each provider call is answered from a recording in
//! `route-tests/recordings/<key>.json`, keyed by a hash of what decides the answer (the target's
//! provider and model, the package and its hash, the whole conversation so far, the parameters,
//! the schema). `junction test --record` makes the calls for real (a provider, or the
//! simulator) and keeps what they answered; a call without a recording fails the test, naming
//! the key and the package. Failed calls are not recorded.

use std::future::Future;

use junction_engine::connector::{ConnectorError, Replay};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::prompts::Package;
use super::{Answer, Conversation, Target};

/// A kept answer, with what it answered (for a reader; the key alone finds it).
#[derive(Debug, Serialize, Deserialize)]
struct Recording {
    package: String,
    model: String,
    messages: Vec<(String, String)>,
    answer: Recorded,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Recorded {
    Content { text: String, usage: Value, truncated: bool },
    Refusal { text: String, usage: Value },
}

/// The recorded answer to this call, or the live one kept when recording. The outer error ends
/// the step: a call without a recording.
pub(super) async fn answer<F, Fut>(
    replay: &Replay,
    target: &Target,
    package: &Package,
    conversation: &Conversation,
    live: F,
) -> Result<Result<Answer, ConnectorError>, ConnectorError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, ConnectorError>>,
{
    let key = key(target, package, conversation);
    let path = replay.dir.join(format!("{key}.json"));
    if !replay.record {
        let bytes = std::fs::read(&path).map_err(|_| {
            ConnectorError::permanent(format!(
                "no recording {key} for package {} (model {}) in {}: run `junction test --record` with the provider or its simulator reachable",
                package.id,
                target.model,
                replay.dir.display()
            ))
        })?;
        let recording: Recording = serde_json::from_slice(&bytes)
            .map_err(|e| ConnectorError::permanent(format!("{} is not a recording: {e}", path.display())))?;
        return Ok(Ok(match recording.answer {
            Recorded::Content { text, usage, truncated } => Answer::Content { text, usage, truncated },
            Recorded::Refusal { text, usage } => Answer::Refusal { text, usage },
        }));
    }
    let answer = live().await;
    if let Ok(answer) = &answer {
        let recorded = match answer {
            Answer::Content { text, usage, truncated } => {
                Recorded::Content { text: text.clone(), usage: usage.clone(), truncated: *truncated }
            }
            Answer::Refusal { text, usage } => Recorded::Refusal { text: text.clone(), usage: usage.clone() },
        };
        let recording = Recording {
            package: format!("{} {}", package.id, package.hash),
            model: target.model.clone(),
            messages: conversation
                .messages()
                .iter()
                .map(|(who, text)| (who.as_str().to_owned(), text.clone()))
                .collect(),
            answer: recorded,
        };
        let text = serde_json::to_string_pretty(&recording).unwrap_or_default();
        std::fs::create_dir_all(&replay.dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| ConnectorError::permanent(format!("cannot keep recording {}: {e}", path.display())))?;
    }
    Ok(answer)
}

/// A hash of what decides a call's answer, and nothing else.
fn key(target: &Target, package: &Package, conversation: &Conversation) -> String {
    let messages: Vec<(&str, &str)> =
        conversation.messages().iter().map(|(who, text)| (who.as_str(), text.as_str())).collect();
    let canonical = json!({
        "provider": target.provider.as_str(),
        "model": target.model,
        "package": [package.id, package.hash],
        "messages": messages,
        "params": { "temperature": package.params.temperature, "max_tokens": package.params.max_tokens },
        "schema": package.schema,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))[..32].to_owned()
}
