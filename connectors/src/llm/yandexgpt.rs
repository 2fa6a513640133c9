//! The `yandexgpt` provider: Yandex Foundation Models' text generation
//! (https://yandex.cloud/en/docs/foundation-models/text-generation/api-ref/TextGeneration/completion):
//! `POST /foundationModels/v1/completion` with `{modelUri: gpt://<folder>/<model>/latest,
//! completionOptions: {temperature, maxTokens}, messages: [{role, text}], jsonSchema: {schema}}`,
//! `Authorization: Api-Key …` (or `Bearer <IAM token>`); the answer in
//! `result.alternatives[0].message.text`, usage in `result.usage` (numbers as strings).

use junction_engine::connector::ConnectorError;
use serde_json::{Value, json};

use super::prompts::Package;
use super::{Answer, Conversation, Target};

/// One completion.
pub(super) async fn complete(
    target: &Target,
    package: &Package,
    conversation: &Conversation,
    trace: Option<&str>,
) -> Result<Answer, ConnectorError> {
    let folder = target.folder.as_deref().unwrap_or_default();
    let model_uri = if target.model.starts_with("gpt://") {
        target.model.clone()
    } else {
        format!("gpt://{folder}/{}/latest", target.model)
    };
    let messages: Vec<Value> =
        conversation.messages().iter().map(|(role, text)| json!({ "role": role.as_str(), "text": text })).collect();
    let mut options = json!({ "stream": false });
    if let Some(t) = package.params.temperature {
        options["temperature"] = json!(t);
    }
    if let Some(m) = package.params.max_tokens {
        // An int64 in the API's JSON mapping: a string.
        options["maxTokens"] = json!(m.to_string());
    }
    let mut body = json!({ "modelUri": model_uri, "completionOptions": options, "messages": messages });
    if let Some(schema) = &package.schema {
        body["jsonSchema"] = json!({ "schema": schema });
    }
    let reply = target.post("/foundationModels/v1/completion", &body, trace).await?;
    let result = &reply.body["result"];
    let alternative = result["alternatives"]
        .get(0)
        .ok_or_else(|| ConnectorError::retryable(format!("{} answered without an alternative", target.describe())))?;
    let number = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    let usage = &result["usage"];
    let usage = json!({
        "prompt_tokens": number(&usage["inputTextTokens"]),
        "completion_tokens": number(&usage["completionTokens"]),
        "total_tokens": number(&usage["totalTokens"]),
    });
    let text = alternative["message"]["text"].as_str().unwrap_or_default().to_owned();
    match alternative["status"].as_str().unwrap_or_default() {
        // The model's answer was filtered: a refusal, the next target may answer.
        "ALTERNATIVE_STATUS_CONTENT_FILTER" => {
            Ok(Answer::Refusal { text: if text.is_empty() { "content filter".into() } else { text }, usage })
        }
        _ if text.is_empty() => {
            Err(ConnectorError::retryable(format!("{} answered an empty message", target.describe())))
        }
        status => Ok(Answer::Content { text, usage, truncated: status == "ALTERNATIVE_STATUS_TRUNCATED_FINAL" }),
    }
}
