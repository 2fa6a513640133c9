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
//! - Budgets of calls, tokens and money held across instances (`budget.rs`), personal data
//!   masked before a prompt leaves (`private.rs`), conversations in turns (`session.rs`).

mod budget;
mod gigachat;
mod openai;
mod private;
mod prompts;
mod replay;
mod session;
mod yandexgpt;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::cache::Cache;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{
    BuildCx, Connector, ConnectorError, Endpoint, Guard, Kind, Outcome, Replay, Role, StartCx,
};
use junction_engine::{Body, Message};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::web::auth::{AuthConfig, Encoding, OAuth2Config};
use crate::web::{Api, Auth};
use budget::{Account, BudgetSpec, Budgets, Price, Prices};
use private::{Masked, Private, PrivateSpec};
use prompts::Package;
use session::{Session, SessionSpec, Turn};

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
    /// What the connector may spend, kept in the store for every instance (see `budget.rs`).
    #[serde(default)]
    budgets: Vec<BudgetSpec>,
    /// Each model's price per million tokens, for budgets that count money.
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    /// The time zone whose midnight renews `period: day` budgets (default UTC).
    #[serde(default)]
    time_zone: Option<String>,
    /// Personal data replaced with placeholders before any prompt leaves (see `private.rs`).
    #[serde(default)]
    private: Option<PrivateSpec>,
    /// What moves a call on to the next target (default: every class).
    #[serde(default)]
    fall_over: Option<Vec<Class>>,
}

/// A reason to leave a target for the next one.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Class {
    /// No connection, a timeout, a 5xx, the target's breaker open.
    Unavailable,
    /// 429.
    RateLimited,
    /// 401 or 403: the target's credentials or access.
    Unauthorized,
    /// The prompt is longer than the model takes.
    ContextLength,
    /// The model refused (or its content filter stopped it).
    Refusal,
    /// An answer still invalid after its repairs.
    Invalid,
}

const EVERY_CLASS: [Class; 6] =
    [Class::Unavailable, Class::RateLimited, Class::Unauthorized, Class::ContextLength, Class::Refusal, Class::Invalid];

impl Class {
    /// The class of a failed call, when it has one (other failures end the call at once).
    fn of(e: &ConnectorError) -> Option<Class> {
        let status = crate::web::answered(e);
        if e.message().contains("context_length_exceeded") {
            Some(Class::ContextLength)
        } else if matches!(status, Some(401 | 403)) {
            Some(Class::Unauthorized)
        } else if status == Some(429) {
            Some(Class::RateLimited)
        } else if e.is_retryable() {
            Some(Class::Unavailable)
        } else {
            None
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    provider: Provider,
    base_url: String,
    /// The provider's key (GigaChat: the authorization key); from `${VAR}`.
    #[serde(default)]
    api_key: Option<String>,
    /// YandexGPT: an IAM token instead of an API key (`Authorization: Bearer`); from `${VAR}`.
    #[serde(default)]
    iam_token: Option<String>,
    /// `gpt-4o-mini`; for YandexGPT the model's name (`yandexgpt-lite`) with `folder`, or a
    /// whole `gpt://…` URI.
    model: String,
    /// YandexGPT: the cloud folder the model is billed to.
    #[serde(default)]
    folder: Option<String>,
    /// GigaChat: the token endpoint (default Sber's `…/api/v2/oauth`).
    #[serde(default)]
    auth_url: Option<String>,
    /// GigaChat: the API's scope (default `GIGACHAT_API_PERS`; `GIGACHAT_API_B2B`, `…_CORP`).
    #[serde(default)]
    scope: Option<String>,
    /// A PEM file of the CA that issued the provider's certificate, under the project (GigaChat:
    /// the Russian Trusted Root CA).
    #[serde(default)]
    ca_file: Option<String>,
    /// This target's own `limits` and `breaker`, as any connector's (read by the engine's guard).
    #[serde(default)]
    limits: Option<Node>,
    #[serde(default)]
    breaker: Option<Node>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Provider {
    /// Any OpenAI-compatible chat completions API.
    Openai,
    /// Yandex Foundation Models' text generation.
    Yandexgpt,
    /// Sber's GigaChat API.
    Gigachat,
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
        let target_nodes = match options.get("targets").map(|n| &n.value) {
            Some(junction_engine::config::node::NodeValue::Seq(items)) => items.clone(),
            _ => Vec::new(),
        };
        for t in config.targets {
            let guard = match target_nodes.get(targets.len()) {
                Some(node) if t.limits.is_some() || t.breaker.is_some() => {
                    let owner = format!("{name}.{}", t.model);
                    Guard::from_options(&owner, node, cx.resources.cache.as_ref())?.map(Arc::new)
                }
                _ => None,
            };
            let mut api = Api::from_options(name, &t.base_url, timeout, options).map_err(|mut e| {
                e.pos = at("targets");
                e
            })?;
            if let Some(ca) = &t.ca_file {
                api.client = client_trusting(&cx.dir.join(ca), timeout)
                    .map_err(|message| NodeError { message, pos: at("targets") })?;
            }
            let key = match (&t.api_key, &t.iam_token, t.provider) {
                (Some(key), None, _) => key.clone(),
                (None, Some(token), Provider::Yandexgpt) => token.clone(),
                (None, None, _) => {
                    let what = if t.provider == Provider::Yandexgpt { "`api_key` or `iam_token`" } else { "`api_key`" };
                    return Err(NodeError {
                        message: format!("a {} target needs {what}", t.provider.as_str()),
                        pos: at("targets"),
                    });
                }
                _ => {
                    return Err(NodeError {
                        message: "`iam_token` is YandexGPT's, instead of `api_key`: give one of them".into(),
                        pos: at("targets"),
                    });
                }
            };
            api.auth = match t.provider {
                Provider::Openai => Auth::Bearer(key),
                // An IAM token as a bearer; else `Api-Key …`, an API key of a service account.
                Provider::Yandexgpt if t.iam_token.is_some() => Auth::Bearer(key),
                Provider::Yandexgpt => Auth::ApiKeyHeader(reqwest::header::AUTHORIZATION, format!("Api-Key {key}")),
                // A 30-minute token from the authorization key, kept in the store per target.
                Provider::Gigachat => {
                    let token = AuthConfig::Oauth2(OAuth2Config {
                        token_url: t.auth_url.clone().unwrap_or_else(|| gigachat::AUTH_URL.into()),
                        client_id: String::new(),
                        client_secret: String::new(),
                        refresh_token: None,
                        scope: Some(t.scope.clone().unwrap_or_else(|| gigachat::SCOPE.into())),
                        redirect_uri: None,
                        encoding: Encoding::Form,
                        grant_type: Some("none".into()),
                        params: BTreeMap::new(),
                        authorization: Some(format!("Basic {key}")),
                        request_id_header: Some("RqUID".into()),
                    });
                    // The stored token belongs to this key, scope and endpoint: another is another's.
                    let owner = format!(
                        "{name}.gigachat.{}",
                        &hex::encode(Sha256::digest(format!("{key}\u{1f}{:?}\u{1f}{:?}", t.scope, t.auth_url)))[..16]
                    );
                    Auth::new(&owner, &token, &api.base, &api.client)
                        .map_err(|e| NodeError { message: e.to_string(), pos: at("targets") })?
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
            targets.push(Target { provider: t.provider, api, model: t.model, folder: t.folder, guard });
        }
        let models = targets.iter().map(|t| t.model.clone()).collect();
        let prices = Arc::new(Prices::new(config.prices, models));
        let budgets = Budgets::from_options(
            name,
            config.budgets,
            &prices,
            config.time_zone.as_deref(),
            timeout,
            options,
            cx.scripts,
        )?;
        let mut private = Private::default();
        if let Some(spec) = config.private {
            private.add(spec, options.get("private").unwrap_or(options))?;
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
            budgets,
            prices,
            private,
            fall_over: config.fall_over.unwrap_or_else(|| EVERY_CLASS.to_vec()),
            replay: OnceLock::new(),
        }))))
    }
}

struct Target {
    provider: Provider,
    api: Api,
    model: String,
    folder: Option<String>,
    /// The target's own limits and breaker: an open breaker sends calls to the next target.
    guard: Option<Arc<Guard>>,
}

/// An HTTP client that also trusts the CA in the PEM file at `path`.
fn client_trusting(path: &std::path::Path, timeout: Duration) -> Result<reqwest::Client, String> {
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| format!("ca_file {} is not a PEM certificate: {e}", path.display()))?;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .add_root_certificate(ca)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
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
    /// The system message, a session's earlier turns, and the new prompt.
    fn new(system: Option<&str>, turns: &[(String, String)], user: &str) -> Self {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push((Speaker::System, system.to_owned()));
        }
        for (asked, answered) in turns {
            messages.push((Speaker::User, asked.clone()));
            messages.push((Speaker::Assistant, answered.clone()));
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

impl Provider {
    fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Yandexgpt => "yandexgpt",
            Provider::Gigachat => "gigachat",
        }
    }
}

impl Target {
    /// POSTs a completion request to `path` under the target's base URL. Asking again is
    /// harmless: a completion changes nothing on the provider's side.
    async fn post(&self, path: &str, body: &Value, trace: Option<&str>) -> Result<crate::web::Reply, ConnectorError> {
        let call = crate::web::Call {
            body: Some(body),
            idempotent: true,
            trace_id: trace,
            ..crate::web::Call::new(reqwest::Method::POST, path)
        };
        self.api.call(&call).await
    }

    fn describe(&self) -> String {
        format!("{} {}", self.provider.as_str(), self.model.to_lowercase())
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
    budgets: Option<Budgets>,
    prices: Arc<Prices>,
    /// What every call of the connector masks.
    private: Private,
    fall_over: Vec<Class>,
    /// In a route test: provider calls answered from recordings (see `replay.rs`).
    replay: OnceLock<Replay>,
}

impl Models {
    /// Whether a failed call moves on to the next target rather than failing the step.
    fn falls_over(&self, e: &ConnectorError) -> bool {
        Class::of(e).is_some_and(|class| self.fall_over.contains(&class))
    }

    /// How a target that ended with `miss` of `class` hands on: to the next, or not.
    fn hand_on(&self, class: Class, miss: Miss) -> Fail {
        if self.fall_over.contains(&class) { Fail::Next(miss) } else { Fail::Last(miss) }
    }
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
    /// More personal data to mask in this step's calls, besides the connector's.
    #[serde(default)]
    private: Option<PrivateSpec>,
    /// Keeps the conversation in turns under an id (see `session.rs`); such calls are not
    /// cached.
    #[serde(default)]
    session: Option<SessionSpec>,
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
        let mut private = self.0.private.clone();
        if let Some(more) = spec.private {
            private.add(more, options.get("private").unwrap_or(options))?;
        }
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
            .map_err(|e| NodeError { message: e.to_string(), pos: options.get("prompt").map(|n| n.pos) })?;
        if self.0.budgets.as_ref().is_some_and(Budgets::bounds_tokens) && package.params.max_tokens.is_none() {
            return Err(NodeError {
                message: format!(
                    "the connector's budgets count tokens or money, so {} must bound its answer: `max_tokens` in its params.yaml",
                    package.id
                ),
                pos: options.get("prompt").map(|n| n.pos),
            });
        }
        let session = match spec.session {
            Some(session) => Some(Session::compile(session, options.get("session").unwrap_or(options), cx.scripts)?),
            None => None,
        };
        let sampled = package.params.temperature.is_some_and(|t| t > 0.0);
        // A turn's answer depends on the turns before it: no exact cache for sessions.
        let cached = self.0.cache_ttl.is_some() && session.is_none() && spec.cache.unwrap_or(!sampled);
        Ok(Arc::new(Complete {
            models: self.0.clone(),
            package: Arc::new(package),
            validate,
            cached,
            private,
            session,
            scripts: cx.scripts.clone(),
        }))
    }

    /// Route tests run the connector for real — packages, checks, repairs, fallbacks, the
    /// exact cache, sessions (in a cache of the test's own), budgets (on the test file's own
    /// store) — with provider calls answered from recordings.
    fn replaying(&self, replay: &Replay) -> Option<Arc<dyn Connector>> {
        let _ = self.0.replay.set(replay.clone());
        let cache = Cache::memory();
        let _ = self.0.cache.set(cache.clone());
        if let Some(budgets) = &self.0.budgets {
            budgets.start(&replay.store);
        }
        // Recording from GigaChat fetches its tokens as in production.
        for target in &self.0.targets {
            target.api.auth.start(&replay.store, &cache);
        }
        Some(Arc::new(Llm(self.0.clone())))
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = self.0.cache.set(cx.cache.clone());
        if let Some(budgets) = &self.0.budgets {
            budgets.start(&cx.store);
        }
        // GigaChat's tokens are kept in the store, for every instance.
        for target in &self.0.targets {
            target.api.auth.start(&cx.store, &cx.cache);
        }
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
    private: Private,
    session: Option<Session>,
    scripts: Arc<junction_engine::script::ScriptEngine>,
}

/// What a target answered.
pub(crate) enum Answer {
    /// The assistant's text, and the usage reported; `truncated` when the model stopped at
    /// the token limit (the text is cut off).
    Content { text: String, usage: Value, truncated: bool },
    /// The model refused.
    Refusal { text: String, usage: Value },
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
        // A session's turns so far, kept masked, with the values its placeholders stand for: this
        // call's placeholders go on from them, so a value masked in an earlier turn stays masked.
        let session = match &self.session {
            Some(session) => {
                let cache = self
                    .models
                    .cache
                    .get()
                    .ok_or_else(|| ConnectorError::unavailable("the session cache is not open yet"))?;
                let key = session.key(&self.models.name, msg, &self.scripts)?;
                let history = session.load(cache, &key).await?;
                Some((session, cache, key, history))
            }
            None => None,
        };
        let mut masked = Masked::with(session.as_ref().map(|(.., h)| h.originals.clone()).unwrap_or_default());
        let turns: Vec<(String, String)> = session
            .as_ref()
            .map(|(.., history)| {
                history.turns.iter().map(|t| (masked.hide_known(&t.user), masked.hide_known(&t.assistant))).collect()
            })
            .unwrap_or_default();
        let (system, user) = if self.private.is_empty() {
            self.package.render(&input).map_err(|e| ConnectorError::rejected(e.to_string()))?
        } else {
            // Rendered from the masked input, then searched for the patterns: what leaves is masked.
            let shown = self.private.mask_input(&input, &mut masked);
            let (system, user) =
                self.package.render(&shown).map_err(|e| ConnectorError::rejected(masked.hide_known(&e.to_string())))?;
            let system = system.map(|s| self.private.mask_text(&s, &mut masked));
            (system, self.private.mask_text(&user, &mut masked))
        };
        // A valid answer kept from any target of the chain serves.
        let keys: Vec<Option<String>> =
            self.models.targets.iter().map(|t| self.cache_key(t, system.as_deref(), &user, &masked)).collect();
        for key in &keys {
            if let Some(hit) = self.cache_get(key.as_deref()).await {
                return Ok(Message::new(Body::Json(hit)));
            }
        }
        // The budgets' buckets this message draws on; each provider call reserves on them.
        let account = self.models.budgets.as_ref().map(|b| b.account(msg)).transpose()?;
        let mut misses = Vec::new();
        for (target, key) in self.models.targets.iter().zip(&keys) {
            let call = Call {
                input: &input,
                system: system.as_deref(),
                user: &user,
                trace: msg.meta.trace_id.as_deref(),
                masked: &masked,
                turns: &turns,
            };
            match self.try_target(target, key.as_deref(), &call, account.as_ref()).await {
                Ok(reply) => {
                    annotate(&reply);
                    if let Some((session, cache, key, mut history)) = session {
                        let assistant = match &reply["output"] {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        // Kept as sent: masked, with what the placeholders stand for beside it.
                        let turn = Turn { user: user.clone(), assistant: masked.hide_known(&assistant) };
                        history.originals = masked.originals().to_vec();
                        session.save(cache, &key, history, turn).await;
                    }
                    return Ok(Message::new(Body::Json(reply)));
                }
                Err(Fail::Now(e)) => return Err(e),
                Err(Fail::Next(miss)) => {
                    metrics::counter!("junction_llm_fallbacks_total", "connector" => self.models.name.clone(), "from" => target.model.clone())
                        .increment(1);
                    tracing::warn!(connector = %self.models.name, target = %miss.target, why = %miss.why, package = %self.package.id, "no valid answer from this target; trying the next");
                    misses.push(miss);
                }
                Err(Fail::Last(miss)) => {
                    misses.push(miss);
                    break;
                }
            }
        }
        Err(self.exhausted(&misses, &user))
    }

    fn describe(&self) -> String {
        format!("llm complete {}", self.package.id)
    }
}

/// What every provider call of one message shares.
struct Call<'a> {
    input: &'a Value,
    system: Option<&'a str>,
    user: &'a str,
    trace: Option<&'a str>,
    /// The originals of the prompt's placeholders.
    masked: &'a Masked,
    /// A session's earlier turns (user, assistant), masked.
    turns: &'a [(String, String)],
}

enum Fail {
    /// Fails the call at once (a 4xx that another target would refuse too).
    Now(ConnectorError),
    /// Moves to the next target.
    Next(Miss),
    /// Ends the chain with this miss: its class is not one the connector falls over on.
    Last(Miss),
}

impl Complete {
    /// One target: its answer, repaired up to `repairs` times, kept under `key` when valid.
    async fn try_target(
        &self,
        target: &Target,
        key: Option<&str>,
        call: &Call<'_>,
        account: Option<&Account>,
    ) -> Result<Value, Fail> {
        let Call { input, system, user, trace, masked, turns } = *call;
        let mut conversation = Conversation::new(system, turns, user);
        let name = target.describe();
        let mut last_invalid = None;
        for round in 0..=self.models.repairs {
            let answer = self.ask(target, &conversation, trace, account).await.map_err(Fail::Now)?;
            let answer = answer.map_err(|e| {
                if self.models.falls_over(&e) {
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
                Answer::Refusal { text, .. } => {
                    let miss = Miss {
                        target: name.clone(),
                        why: format!("refused: {text}"),
                        unavailable: false,
                        invalid: None,
                    };
                    return Err(self.models.hand_on(Class::Refusal, miss));
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
            // Placeholders are put back before the checks: they see what the route will.
            let (output, errors) = match (&self.package.schema, serde_json::from_str::<Value>(&text)) {
                (None, _) => (Value::String(masked.restore(&text)), Vec::new()),
                (Some(_), Ok(mut output)) => {
                    masked.restore_value(&mut output);
                    let errors = self.package.errors(&output);
                    (output, errors)
                }
                (Some(_), Err(e)) => (Value::Null, vec![format!("not JSON: {e}")]),
            };
            // The hook saw the values in place: what it says goes on masked.
            let errors = if errors.is_empty() {
                self.checked(&output, input, trace)
                    .await
                    .map_err(|e| Fail::Now(e.map_message(|m| masked.hide_known(m))))?
            } else {
                errors
            };
            if errors.is_empty() {
                let reply = self.reply(target, output, usage, round);
                self.cache_put(key, &reply).await;
                return Ok(reply);
            }
            tracing::info!(connector = %self.models.name, target = %name, round, errors = errors.len(), "the answer does not pass the package's schema or the route's check");
            metrics::counter!("junction_llm_repairs_total", "connector" => self.models.name.clone(), "model" => target.model.clone())
                .increment(1);
            // The errors quote the restored answer: masked again before they leave.
            let errors: Vec<String> = errors.iter().map(|e| masked.hide_known(e)).collect();
            conversation.repair(&text, &errors);
            last_invalid = Some((text, errors));
        }
        let miss = Miss {
            target: name,
            why: format!("invalid after {} repairs", self.models.repairs),
            unavailable: false,
            invalid: last_invalid,
        };
        Err(self.models.hand_on(Class::Invalid, miss))
    }

    /// One provider call, within the budgets when the connector has them: its worst case
    /// reserved before (a budget it does not fit fails the message, the outer `Err`), settled
    /// to the reported usage after.
    async fn ask(
        &self,
        target: &Target,
        conversation: &Conversation,
        trace: Option<&str>,
        account: Option<&Account>,
    ) -> Result<Result<Answer, ConnectorError>, ConnectorError> {
        // The target's own breaker and limits first: open, the call is the target's outage, and
        // nothing is reserved for it.
        let permit = match &target.guard {
            Some(guard) => match guard.enter().await {
                Ok(permit) => Some(permit),
                Err(e) => return Ok(Err(e)),
            },
            None => None,
        };
        let budgets = self.models.budgets.as_ref().zip(account);
        let hold = match budgets {
            Some((budgets, account)) => {
                // The schema goes with every call (as a response format or a function) and is
                // billed; 200 bytes more for its wrapping.
                let schema = if self.package.schema.is_some() { self.package.schema_bytes + 200 } else { 0 };
                let worst = budgets.worst_case(&target.model, conversation, schema, self.package.params.max_tokens);
                match budgets.reserve(account, worst).await {
                    Ok(hold) => Some(hold),
                    Err(e) => {
                        if let (Some(guard), Some(permit)) = (&target.guard, permit) {
                            guard.leave(permit, Outcome::NotSent).await;
                        }
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let started = std::time::Instant::now();
        let call = async {
            // In a route test the answer is a recording (made for real when recording): the
            // budgets, the breaker and everything after run as in production. A missing
            // recording fails the message, the outer `Err`.
            if let Some(replay) = self.models.replay.get() {
                return replay::answer(replay, target, &self.package, conversation, || {
                    self.call(target, conversation, trace)
                })
                .await;
            }
            Ok(self.call(target, conversation, trace).await)
        };
        // A reservation is given back when it expires: the call must not outlive it.
        let answer = match budgets.map(|(b, _)| b.call_bound()) {
            Some(bound) => tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
                Ok(Err(ConnectorError::retryable(format!(
                    "{} took longer than the {bound:?} its budget reservation is held",
                    target.describe()
                ))))
            }),
            None => call.await,
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(missing) => {
                if let (Some(guard), Some(permit)) = (&target.guard, permit) {
                    guard.leave(permit, Outcome::NotSent).await;
                }
                // Never sent: it spent nothing.
                if let (Some((budgets, account)), Some(hold)) = (budgets, hold) {
                    budgets.settle(account, hold, budget::Spend::default()).await;
                }
                return Err(missing);
            }
        };
        self.measure(target, &answer, started.elapsed());
        if let (Some(guard), Some(permit)) = (&target.guard, permit) {
            guard.leave(permit, Outcome::of(&answer)).await;
        }
        if let (Some((budgets, account)), Some(hold)) = (budgets, hold) {
            let spent = match &answer {
                Ok(Answer::Content { usage, .. } | Answer::Refusal { usage, .. }) => {
                    budgets.reported(&target.model, usage, hold.worst)
                }
                Err(e) => Budgets::failed(e, hold.worst),
            };
            budgets.settle(account, hold, spent).await;
        }
        Ok(answer)
    }

    /// One completion from `target`'s provider.
    async fn call(
        &self,
        target: &Target,
        conversation: &Conversation,
        trace: Option<&str>,
    ) -> Result<Answer, ConnectorError> {
        match target.provider {
            Provider::Openai => openai::complete(target, &self.package, conversation, trace).await,
            Provider::Yandexgpt => yandexgpt::complete(target, &self.package, conversation, trace).await,
            Provider::Gigachat => gigachat::complete(target, &self.package, conversation, trace).await,
        }
    }

    /// Per target: `junction_llm_requests_total{connector, provider, model, outcome}` (ok,
    /// refusal, or the error's class), its duration, and the tokens and money it reported.
    fn measure(&self, target: &Target, answer: &Result<Answer, ConnectorError>, took: Duration) {
        let outcome = match answer {
            Ok(Answer::Content { .. }) => "ok",
            Ok(Answer::Refusal { .. }) => "refusal",
            Err(ConnectorError::Unavailable { .. }) => "unavailable",
            Err(ConnectorError::Retryable { .. }) => "retryable",
            Err(ConnectorError::Rejected { .. } | ConnectorError::Permanent { .. }) => "refused",
            Err(ConnectorError::Exhausted { .. }) => "exhausted",
        };
        let (connector, model) = (self.models.name.clone(), target.model.clone());
        let provider = target.provider.as_str();
        metrics::counter!("junction_llm_requests_total", "connector" => connector.clone(), "provider" => provider, "model" => model.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("junction_llm_request_duration_seconds", "connector" => connector.clone(), "model" => model.clone())
            .record(took.as_secs_f64());
        let usage = match answer {
            Ok(Answer::Content { usage, .. } | Answer::Refusal { usage, .. }) => usage,
            Err(_) => return,
        };
        for (field, kind) in [("prompt_tokens", "input"), ("completion_tokens", "output")] {
            if let Some(n) = usage.get(field).and_then(Value::as_u64) {
                metrics::counter!("junction_llm_tokens_total", "connector" => connector.clone(), "model" => model.clone(), "type" => kind)
                    .increment(n);
            }
        }
        if let Some(cost) = self.models.prices.cost_of(&target.model, usage) {
            metrics::counter!("junction_llm_cost_total", "connector" => connector, "model" => model).increment(cost);
        }
    }

    /// The cache key of a request to `target`: a hash of what decides the answer — the model,
    /// the package and its hash, the rendered messages, the parameters and the schema — and
    /// nothing else (no request ids, no clock).
    fn cache_key(&self, target: &Target, system: Option<&str>, user: &str, masked: &Masked) -> Option<String> {
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
            // Two deals whose masked prompts are alike have different answers.
            "private": masked.digest(),
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
            "provider": target.provider.as_str(),
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

/// The value of a key expression (a budget's `per`, a session's `id`) over `msg`: a non-empty
/// string, or a number as its text; otherwise why not, naming its kind only (a key may be
/// personal data).
fn key_of(
    scripts: &junction_engine::script::ScriptEngine,
    script: &junction_engine::script::Script,
    msg: &Message,
) -> Result<String, String> {
    match scripts.eval_message(script, msg) {
        Ok(Value::String(s)) if !s.is_empty() => Ok(s),
        Ok(v @ Value::Number(_)) => Ok(v.to_string()),
        Ok(other) => Err(format!(
            "is {}; a key is a string or a number",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a bool",
                Value::String(_) => "an empty string",
                Value::Array(_) => "a list",
                _ => "an object",
            }
        )),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

/// The call's span, in the OpenTelemetry GenAI conventions' names: who answered and what it used.
fn annotate(reply: &Value) {
    use junction_engine::telemetry::otlp::call;
    if !call::traced() {
        return;
    }
    call::set("gen_ai.operation.name", "chat");
    for (key, field) in [("gen_ai.provider.name", "provider"), ("gen_ai.request.model", "model")] {
        if let Some(v) = reply[field].as_str() {
            call::set(key, v.to_owned());
        }
    }
    for (key, field) in
        [("gen_ai.usage.input_tokens", "prompt_tokens"), ("gen_ai.usage.output_tokens", "completion_tokens")]
    {
        if let Some(n) = reply["usage"][field].as_i64() {
            call::set(key, n);
        }
    }
}

#[cfg(test)]
mod tests;
