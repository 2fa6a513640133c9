//! `kind: llm`: language models behind one operation, `complete`: a prompt package rendered
//! with the message, sent to the first target of a fallback chain, the answer checked against
//! the package's schema, sent back for repair with the exact errors, and passed on only when
//! valid.
//!
//! ```yaml
//! llm:
//!   kind: llm
//!   targets:                                   # tried in order
//!     - { provider: openai, base_url: https://api.openai.com/v1, api_key: "${OPENAI_API_KEY}", model: gpt-4o-mini }
//!     - { provider: openai, base_url: http://127.0.0.1:11434/v1, api_key: "${OLLAMA_KEY:-none}", model: qwen2.5 }
//!   repairs: 2                                 # answers sent back with their errors, at most
//!   timeout: 60s
//! ```
//!
//! A step: `request: { connector: llm, op: complete, prompt: media-plan/1 }`. The reply is
//! `{output, package: {id, hash}, provider, model, usage, repairs}`.
//!
//! - Providers: `openai`, any OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, a
//!   proxy), its request and answer typed by the `async-openai` crate, sent by Junction's own
//!   HTTP client (timeouts, `Retry-After`, limits and breaker as every connector's);
//!   `yandexgpt`, Yandex Foundation Models (`modelUri`, `jsonSchema`, `Api-Key`).
//! - The schema goes to the provider (`response_format: json_schema`) and every answer is
//!   checked again here with the full schema; a refusal is an outcome, not a parse error.
//! - What moves to the next target: no connection, a timeout, 429, 5xx, the provider's 401/403,
//!   the context length exceeded, a refusal, and an answer still invalid after its repairs.
//!   Other 4xx fail at once. When no target gives a valid answer the call fails: retryable when
//!   the last target was unavailable, otherwise refused with the raw answer, the prompt and the
//!   errors in the dead letter; nothing half-valid is passed on.

mod openai;
mod prompts;
mod yandexgpt;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::cache::Cache;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Endpoint, Kind, Role, StartCx};
use junction_engine::{Body, Message};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::web::{Api, Auth};
use prompts::Package;

pub struct LlmKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Tried in order.
    targets: Vec<TargetSpec>,
    /// The folder of prompt packages, under the project (default `prompts`).
    #[serde(default)]
    prompts: Option<String>,
    /// Answers sent back with their errors, at most, per target (default 2).
    #[serde(default)]
    repairs: Option<u32>,
    /// Per-call timeout (default 60s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    /// Keeps valid answers in the project's `cache:` this long, keyed by the exact request
    /// (off without it).
    #[serde(default)]
    cache_ttl: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    provider: Provider,
    base_url: String,
    api_key: String,
    /// `gpt-4o-mini`; for YandexGPT the model's name (`yandexgpt-lite`) with `folder`, or a
    /// whole `gpt://…` URI.
    model: String,
    /// YandexGPT: the cloud folder the model is billed to.
    #[serde(default)]
    folder: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Provider {
    /// Any OpenAI-compatible chat completions API.
    Openai,
    /// Yandex Foundation Models' text generation.
    Yandexgpt,
}

impl Kind for LlmKind {
    const NAME: &'static str = "llm";
    type Config = LlmConfig;

    fn build(
        &self,
        name: &str,
        config: LlmConfig,
        options: &Node,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        if config.targets.is_empty() {
            return Err(NodeError { message: "`targets` names at least one model".into(), pos: at("targets") });
        }
        let timeout = config.timeout.map_or(Duration::from_secs(60), |t| t.0);
        let mut targets = Vec::new();
        for t in config.targets {
            let mut api = Api::from_options(name, &t.base_url, timeout, options).map_err(|mut e| {
                e.pos = at("targets");
                e
            })?;
            api.auth = match t.provider {
                Provider::Openai => Auth::Bearer(t.api_key),
                // `Api-Key …`: an API key of a service account.
                Provider::Yandexgpt => {
                    Auth::ApiKeyHeader(reqwest::header::AUTHORIZATION, format!("Api-Key {}", t.api_key))
                }
            };
            if t.provider == Provider::Yandexgpt && t.folder.is_none() && !t.model.starts_with("gpt://") {
                return Err(NodeError {
                    message: format!(
                        "a yandexgpt target names its `folder` (or gives `model` as gpt://<folder>/{}/latest)",
                        t.model
                    ),
                    pos: at("targets"),
                });
            }
            targets.push(Target { provider: t.provider, api, model: t.model, folder: t.folder });
        }
        let (root, lock) = prompts::paths(cx.dir, config.prompts.as_deref());
        Ok(Arc::new(Llm(Arc::new(Models {
            name: name.to_owned(),
            targets,
            repairs: config.repairs.unwrap_or(2),
            root,
            lock,
            cache_ttl: config.cache_ttl.map(|t| t.0),
            cache: OnceLock::new(),
        }))))
    }
}

struct Target {
    provider: Provider,
    api: Api,
    model: String,
    folder: Option<String>,
}

/// Who says a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaker {
    System,
    User,
    Assistant,
}

impl Speaker {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Speaker::System => "system",
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
        }
    }
}

/// The messages of one call, growing with each repair; each provider writes them its way.
pub(crate) struct Conversation {
    messages: Vec<(Speaker, String)>,
}

impl Conversation {
    fn new(system: Option<&str>, user: &str) -> Self {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push((Speaker::System, system.to_owned()));
        }
        messages.push((Speaker::User, user.to_owned()));
        Self { messages }
    }

    /// The answer given and what is wrong with it, for the model to answer again.
    fn repair(&mut self, answer: &str, errors: &[String]) {
        self.messages.push((Speaker::Assistant, answer.to_owned()));
        self.messages.push((
            Speaker::User,
            format!(
                "Your answer was not accepted:\n- {}\nAnswer again with the corrected JSON only.",
                errors.join("\n- ")
            ),
        ));
    }

    pub(crate) fn messages(&self) -> &[(Speaker, String)] {
        &self.messages
    }
}

impl Target {
    fn describe(&self) -> String {
        format!("{:?} {}", self.provider, self.model).to_lowercase()
    }
}

struct Models {
    name: String,
    targets: Vec<Target>,
    repairs: u32,
    root: PathBuf,
    lock: PathBuf,
    cache_ttl: Option<Duration>,
    /// The project's cache, once started.
    cache: OnceLock<Cache>,
}

struct Llm(Arc<Models>);

/// `{ connector: llm, op: complete, prompt: media-plan/1 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    op: Op,
    prompt: String,
    /// Another connector's operation that checks a schema-valid answer: it gets `{output,
    /// input}` and answers `{errors: [...]}` (none: accepted), e.g. `{ connector: masterdeal,
    /// op: check_media_plan }`.
    #[serde(default)]
    validate: Option<Node>,
    /// Whether answers of this step may come from the cache (default: when the connector has
    /// `cache_ttl` and the package's temperature is 0 or unset; `true` caches a sampled answer
    /// too).
    #[serde(default)]
    cache: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    Complete,
}

#[async_trait]
impl Connector for Llm {
    fn kind(&self) -> &'static str {
        "llm"
    }

    fn endpoint(&self, _role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let spec: OpSpec = options.parse()?;
        let Op::Complete = spec.op;
        let validate = match &spec.validate {
            Some(node) => Some(
                cx.endpoints
                    .ok_or_else(|| NodeError {
                        message: "`validate` names another connector's operation; it is resolved in a route".into(),
                        pos: Some(node.pos),
                    })?
                    .endpoint(Role::Request, node)?,
            ),
            None => None,
        };
        // The package is loaded, and held to the lock, when the project is: `junction check`
        // finds a changed prompt.
        let package = Package::load(&self.0.root, &spec.prompt, &self.0.lock)
            .map_err(|message| NodeError { message, pos: options.get("prompt").map(|n| n.pos) })?;
        let sampled = package.params.temperature.is_some_and(|t| t > 0.0);
        let cached = self.0.cache_ttl.is_some() && spec.cache.unwrap_or(!sampled);
        Ok(Arc::new(Complete { models: self.0.clone(), package: Arc::new(package), validate, cached }))
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = self.0.cache.set(cx.cache.clone());
        Ok(())
    }
}

struct Complete {
    models: Arc<Models>,
    package: Arc<Package>,
    /// The route's domain check of an answer, after the schema's.
    validate: Option<Arc<dyn Endpoint>>,
    /// Whether valid answers are kept and reused.
    cached: bool,
}

/// What a target answered.
pub(crate) enum Answer {
    /// The assistant's text, and the usage reported; `truncated` when the model stopped at
    /// the token limit (the text is cut off).
    Content { text: String, usage: Value, truncated: bool },
    /// The model refused.
    Refusal(String),
}

/// Why a target gave no valid answer, for the error the call ends with.
struct Miss {
    target: String,
    why: String,
    /// The failure was the target's availability (the next call may go through).
    unavailable: bool,
    /// The last invalid answer and its errors.
    invalid: Option<(String, Vec<String>)>,
}

#[async_trait]
impl Endpoint for Complete {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let input = msg.body.to_json();
        let (system, user) = self.package.render(&input).map_err(ConnectorError::rejected)?;
        // A valid answer kept from any target of the chain serves.
        for target in &self.models.targets {
            if let Some(hit) = self.cache_get(self.cache_key(target, system.as_deref(), &user).as_deref()).await {
                return Ok(Message::new(Body::Json(hit)));
            }
        }
        let mut misses = Vec::new();
        for target in &self.models.targets {
            match self.try_target(target, &input, system.as_deref(), &user, msg.meta.trace_id.as_deref()).await {
                Ok(reply) => return Ok(Message::new(Body::Json(reply))),
                Err(Fail::Now(e)) => return Err(e),
                Err(Fail::Next(miss)) => {
                    tracing::warn!(connector = %self.models.name, target = %miss.target, why = %miss.why, package = %self.package.id, "no valid answer from this target; trying the next");
                    misses.push(miss);
                }
            }
        }
        Err(self.exhausted(&misses, &user))
    }

    fn describe(&self) -> String {
        format!("llm complete {}", self.package.id)
    }
}

enum Fail {
    /// Fails the call at once (a 4xx that another target would refuse too).
    Now(ConnectorError),
    /// Moves to the next target.
    Next(Miss),
}

impl Complete {
    /// One target: its answer, repaired up to `repairs` times.
    async fn try_target(
        &self,
        target: &Target,
        input: &Value,
        system: Option<&str>,
        user: &str,
        trace: Option<&str>,
    ) -> Result<Value, Fail> {
        let key = self.cache_key(target, system, user);
        let mut conversation = Conversation::new(system, user);
        let name = target.describe();
        let mut last_invalid = None;
        for round in 0..=self.models.repairs {
            let answer = match target.provider {
                Provider::Openai => openai::complete(target, &self.package, &conversation, trace).await,
                Provider::Yandexgpt => yandexgpt::complete(target, &self.package, &conversation, trace).await,
            };
            let answer = answer.map_err(|e| {
                if falls_over(&e) {
                    Fail::Next(Miss {
                        target: name.clone(),
                        why: e.message().to_owned(),
                        unavailable: true,
                        invalid: None,
                    })
                } else {
                    Fail::Now(e)
                }
            })?;
            let (text, usage) = match answer {
                Answer::Refusal(text) => {
                    return Err(Fail::Next(Miss {
                        target: name.clone(),
                        why: format!("refused: {text}"),
                        unavailable: false,
                        invalid: None,
                    }));
                }
                Answer::Content { text, usage, truncated } => {
                    if truncated {
                        let errors = vec!["the answer was cut off at the token limit: answer shorter".to_owned()];
                        conversation.repair(&text, &errors);
                        last_invalid = Some((text, errors));
                        continue;
                    }
                    (text, usage)
                }
            };
            let (output, errors) = match (&self.package.schema, serde_json::from_str::<Value>(&text)) {
                (None, _) => (Value::String(text.clone()), Vec::new()),
                (Some(_), Ok(output)) => {
                    let errors = self.package.errors(&output);
                    (output, errors)
                }
                (Some(_), Err(e)) => (Value::Null, vec![format!("not JSON: {e}")]),
            };
            let errors =
                if errors.is_empty() { self.checked(&output, input, trace).await.map_err(Fail::Now)? } else { errors };
            if errors.is_empty() {
                let reply = self.reply(target, output, usage, round);
                self.cache_put(key.as_deref(), &reply).await;
                return Ok(reply);
            }
            tracing::info!(connector = %self.models.name, target = %name, round, errors = errors.len(), "the answer does not pass the package's schema or the route's check");
            conversation.repair(&text, &errors);
            last_invalid = Some((text, errors));
        }
        Err(Fail::Next(Miss {
            target: name,
            why: format!("invalid after {} repairs", self.models.repairs),
            unavailable: false,
            invalid: last_invalid,
        }))
    }

    /// The cache key of a request to `target`: a hash of what decides the answer — the model,
    /// the package and its hash, the rendered messages, the parameters and the schema — and
    /// nothing else (no request ids, no clock).
    fn cache_key(&self, target: &Target, system: Option<&str>, user: &str) -> Option<String> {
        if !self.cached {
            return None;
        }
        let p = &self.package;
        let canonical = json!({
            "model": target.model,
            "package": [p.id, p.hash],
            "messages": [system, user],
            "params": { "temperature": p.params.temperature, "max_tokens": p.params.max_tokens },
            "schema": p.schema,
            // An answer one check accepted is not another's.
            "validate": self.validate.as_ref().map(|v| v.describe()),
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        Some(format!("junction:llm:{}:{}", self.models.name, hex::encode(digest)))
    }

    async fn cache_get(&self, key: Option<&str>) -> Option<Value> {
        let (key, cache) = (key?, self.models.cache.get()?);
        let found = match cache.get(key).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(connector = %self.models.name, error = %e, "the answer cache cannot be read; asking the model");
                None
            }
        };
        let hit = found.and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("junction_llm_cache_total", "connector" => self.models.name.clone(), "result" => result)
            .increment(1);
        hit.map(|mut reply| {
            reply["cached"] = Value::Bool(true);
            reply
        })
    }

    async fn cache_put(&self, key: Option<&str>, reply: &Value) {
        let (Some(key), Some(cache), Some(ttl)) = (key, self.models.cache.get(), self.models.cache_ttl) else {
            return;
        };
        if let Err(e) = cache.put(key, reply.to_string().as_bytes(), ttl).await {
            tracing::warn!(connector = %self.models.name, error = %e, "cannot keep the answer in the cache");
        }
    }

    /// The route's domain check of a schema-valid `output`: its errors (none without a hook).
    async fn checked(&self, output: &Value, input: &Value, trace: Option<&str>) -> Result<Vec<String>, ConnectorError> {
        let Some(hook) = &self.validate else { return Ok(Vec::new()) };
        let mut msg = Message::new(Body::Json(json!({ "output": output, "input": input })));
        msg.meta.trace_id = trace.map(str::to_owned);
        let answer = hook.request(&msg).await?.body.to_json();
        match answer.get("errors") {
            Some(Value::Array(errors)) => {
                Ok(errors.iter().map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned)).collect())
            }
            _ => Err(ConnectorError::permanent(format!(
                "the validation hook {} answered without `errors` (a list, empty when the answer is accepted): {answer}",
                hook.describe()
            ))),
        }
    }

    fn reply(&self, target: &Target, output: Value, usage: Value, repairs: u32) -> Value {
        json!({
            "output": output,
            "package": { "id": self.package.id, "hash": self.package.hash },
            "provider": format!("{:?}", target.provider).to_lowercase(),
            "model": target.model,
            "usage": usage,
            "repairs": repairs,
            "cached": false,
        })
    }

    /// The error of a call no target answered validly.
    fn exhausted(&self, misses: &[Miss], user: &str) -> ConnectorError {
        let tried: Vec<String> = misses.iter().map(|m| format!("{}: {}", m.target, m.why)).collect();
        let mut message = format!("no target gave a valid answer for {} ({})", self.package.id, tried.join("; "));
        if misses.last().is_some_and(|m| m.unavailable) {
            return ConnectorError::retryable(message);
        }
        if let Some((raw, errors)) = misses.iter().rev().find_map(|m| m.invalid.as_ref()) {
            message.push_str(&format!("\nlast answer: {raw}\nits errors: {}\nprompt: {user}", errors.join("; ")));
        }
        ConnectorError::rejected(message)
    }
}

/// Whether a failed call moves on to the next target rather than failing the step.
fn falls_over(e: &ConnectorError) -> bool {
    let message = e.message();
    e.is_retryable()
        || matches!(e, ConnectorError::Unavailable { .. })
        || message.contains(" 401 ")
        || message.contains(" 403 ")
        || message.contains("context_length_exceeded")
}

#[cfg(test)]
mod tests;
