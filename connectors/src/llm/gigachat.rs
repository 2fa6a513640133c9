//! The `gigachat` provider: Sber's GigaChat API
//! (https://developers.sber.ru/docs/ru/gigachat/api/reference/rest/gigachat-api).
//!
//! - A token: `POST https://ngw.devices.sberbank.ru:9443/api/v2/oauth` with `Authorization: Basic
//!   <authorization key>`, a fresh `RqUID` (a UUID) and the form `scope=GIGACHAT_API_PERS` (or
//!   `_B2B`, `_CORP`) → `{access_token, expires_at}` (unix milliseconds; 30 minutes). The token is
//!   kept in the store for every instance and fetched again before it expires, or at once when a
//!   call is answered 401.
//! - A completion: `POST /api/v1/chat/completions` (OpenAI's shape: `model`, `messages`,
//!   `temperature`, `max_tokens`). GigaChat has no JSON-schema answers: a package's schema goes as
//!   the one function the model must call (`functions: [{name: "answer", parameters: schema}]`,
//!   `function_call: {name: "answer"}`), and the answer is the call's `arguments`.
//! - `finish_reason`: `length` is a cut-off answer, `blacklist` the content filter (a refusal).
//! - GigaChat's certificates are issued by the Russian Trusted Root CA: name its PEM in the
//!   target's `ca_file`.

use junction_engine::connector::ConnectorError;
use serde_json::{Value, json};

use super::prompts::Package;
use super::{Answer, Conversation, Target};

/// The default token endpoint and scope.
pub(super) const AUTH_URL: &str = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth";
pub(super) const SCOPE: &str = "GIGACHAT_API_PERS";

/// The function a package's schema is given as.
const ANSWER: &str = "answer";

/// One completion.
pub(super) async fn complete(
    target: &Target,
    package: &Package,
    conversation: &Conversation,
    trace: Option<&str>,
) -> Result<Answer, ConnectorError> {
    let messages: Vec<Value> =
        conversation.messages().iter().map(|(role, text)| json!({ "role": role.as_str(), "content": text })).collect();
    let mut body = json!({ "model": target.model, "messages": messages, "stream": false });
    if let Some(t) = package.params.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = package.params.max_tokens {
        body["max_tokens"] = json!(m);
    }
    if let Some(schema) = &package.schema {
        body["functions"] = json!([{
            "name": ANSWER,
            "description": "The answer, as this JSON Schema describes it.",
            "parameters": schema,
        }]);
        body["function_call"] = json!({ "name": ANSWER });
    }
    let reply = target.post("/chat/completions", &body, trace).await?;
    let choice = reply.body["choices"]
        .get(0)
        .ok_or_else(|| ConnectorError::retryable(format!("{} answered without a choice", target.describe())))?;
    let usage = reply.body.get("usage").cloned().unwrap_or(Value::Null);
    let message = &choice["message"];
    let finish = choice["finish_reason"].as_str().unwrap_or_default();
    // The function's arguments: an object (GigaChat's own shape) or a string of one (OpenAI's).
    let text = match &message["function_call"]["arguments"] {
        Value::String(s) => Some(s.clone()),
        Value::Null => message["content"].as_str().map(str::to_owned),
        args => Some(args.to_string()),
    };
    match (finish, text) {
        ("blacklist", text) => Ok(Answer::Refusal { text: text.unwrap_or_else(|| "content filter".into()), usage }),
        (_, Some(text)) => Ok(Answer::Content { text, usage, truncated: finish == "length" }),
        (_, None) => Err(ConnectorError::retryable(format!("{} answered an empty message", target.describe()))),
    }
}
