//! Sessions: a conversation in turns ("move 20% from video to search"). A step with `session:`
//! keeps each accepted turn — the prompt and the answer — in the project's cache (Redis across
//! instances) under the session's id, and sends the turns kept so far before the new prompt.
//! The history is bounded in turns and in tokens (counted from above, as budgets count them:
//! a byte each), the oldest dropped first, and expires `ttl` after its last turn. Every answer
//! is checked like a first one; an answer that is not accepted is not kept.
//!
//! ```yaml
//! - request: { connector: llm, op: complete, prompt: media-plan-refine/1,
//!              session: { id: body.session_id, turns: 10, tokens: 16000, ttl: 2h } }
//! ```

use std::time::Duration;

use junction_engine::Message;
use junction_engine::cache::Cache;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::ConnectorError;
use junction_engine::script::{Script, ScriptEngine};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionSpec {
    /// An expression over the message: the session's id.
    id: String,
    /// Turns kept, at most (default 10).
    #[serde(default)]
    turns: Option<usize>,
    /// Tokens the kept turns may take, at most (default 16000).
    #[serde(default)]
    tokens: Option<usize>,
    /// How long a session lives after its last turn (default 1h).
    #[serde(default)]
    ttl: Option<ConfigDuration>,
}

pub(super) struct Session {
    id: Script,
    turns: usize,
    tokens: usize,
    ttl: Duration,
}

/// The accepted turns of a session as they were sent: masked, with the values the placeholders
/// stand for (`[PII_n]` is `originals[n - 1]`), so every turn's calls number them alike.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct History {
    pub(super) turns: Vec<Turn>,
    #[serde(default)]
    pub(super) originals: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Turn {
    pub(super) user: String,
    pub(super) assistant: String,
}

impl Session {
    pub(super) fn compile(spec: SessionSpec, node: &Node, scripts: &ScriptEngine) -> Result<Session, NodeError> {
        let at = |key: &str| Some(node.get(key).map_or(node.pos, |n| n.pos));
        let id = scripts
            .compile_expression("session id", &spec.id)
            .map_err(|e| NodeError { message: format!("Rhai: {}", e.message), pos: at("id") })?;
        let turns = spec.turns.unwrap_or(10);
        if turns == 0 {
            return Err(NodeError { message: "`turns` is at least 1".into(), pos: at("turns") });
        }
        Ok(Session {
            id,
            turns,
            tokens: spec.tokens.unwrap_or(16_000),
            ttl: spec.ttl.map_or(Duration::from_secs(3600), |t| t.0),
        })
    }

    /// The cache key of `msg`'s session.
    pub(super) fn key(&self, connector: &str, msg: &Message, scripts: &ScriptEngine) -> Result<String, ConnectorError> {
        let id = super::key_of(scripts, &self.id, msg)
            .map_err(|why| ConnectorError::rejected(format!("the session id {why}")))?;
        Ok(format!("junction:llm:session:{connector}:{}", hex::encode(Sha256::digest(id.as_bytes()))))
    }

    /// The session's turns so far. A history that cannot be read fails the call (retried),
    /// rather than answering as if the conversation were new.
    pub(super) async fn load(&self, cache: &Cache, key: &str) -> Result<History, ConnectorError> {
        let found = cache
            .get(key)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("the session's history cannot be read: {e}")))?;
        Ok(found.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default())
    }

    /// Adds an accepted turn and keeps the history within its bounds.
    pub(super) async fn save(&self, cache: &Cache, key: &str, mut history: History, turn: Turn) {
        history.turns.push(turn);
        self.bound(&mut history);
        let bytes = serde_json::to_vec(&history).unwrap_or_default();
        if let Err(e) = cache.put(key, &bytes, self.ttl).await {
            tracing::warn!(error = %e, "cannot keep the session's turn; its next turn starts without it");
        }
    }

    fn bound(&self, history: &mut History) {
        let excess = history.turns.len().saturating_sub(self.turns);
        history.turns.drain(..excess);
        while history.turns.len() > 1
            && history.turns.iter().map(|t| t.user.len() + t.assistant.len()).sum::<usize>() > self.tokens
        {
            history.turns.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(turns: usize, tokens: usize) -> Session {
        let scripts = ScriptEngine::new(&Default::default());
        let id = scripts.compile_expression("id", "body.id").expect("an expression");
        Session { id, turns, tokens, ttl: Duration::from_secs(60) }
    }

    fn turns(n: usize, size: usize) -> History {
        History {
            turns: (0..n)
                .map(|i| Turn { user: format!("{i}{}", "u".repeat(size)), assistant: "a".repeat(size) })
                .collect(),
            originals: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_turns_go_first() {
        let mut h = turns(5, 1);
        session(3, 1000).bound(&mut h);
        assert_eq!(h.turns.iter().map(|t| &t.user[..1]).collect::<String>(), "234");
        let mut h = turns(5, 100);
        session(10, 450).bound(&mut h);
        assert_eq!(h.turns.len(), 2, "two turns of ~200 bytes fit in 450");
        let mut h = turns(1, 1000);
        session(10, 10).bound(&mut h);
        assert_eq!(h.turns.len(), 1, "the last turn stays even when it alone is over");
    }
}
