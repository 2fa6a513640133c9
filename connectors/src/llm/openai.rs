//! The `openai` provider: OpenAI's chat completions API
//! (https://platform.openai.com/docs/api-reference/chat/create), which vLLM, Ollama and most
//! proxies serve too. Requests and answers are `async-openai`'s types; the call is Junction's
//! ([`crate::web::Api`]: timeouts, `Retry-After`, replies checked).

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason,
    ResponseFormat, ResponseFormatJsonSchema,
};
use junction_engine::connector::ConnectorError;
use serde_json::Value;

use super::prompts::Package;
use super::{Answer, Conversation, Speaker, Target};

/// Keywords strict mode does not take (OpenAI's structured outputs, "supported schemas").
const NOT_STRICT: [&str; 18] = [
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "uniqueItems",
    "minLength",
    "maxLength",
];

/// Why `schema` is outside the subset OpenAI's strict mode takes — an object at the root, every
/// object closed (`additionalProperties: false`) with every property required, none of
/// [`NOT_STRICT`] — or `None` when it is in it.
pub(crate) fn strict_misfit(schema: &Value) -> Option<String> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Some("the root is not `type: object`".into());
    }
    misfit_at(schema, "#")
}

fn misfit_at(schema: &Value, at: &str) -> Option<String> {
    let Value::Object(map) = schema else { return None };
    if let Some(keyword) = NOT_STRICT.iter().find(|k| map.contains_key(**k)) {
        return Some(format!("{at} uses `{keyword}`"));
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Some(format!("{at} does not say `additionalProperties: false`"));
        }
        let required: Vec<&str> =
            map.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        if let Some(name) = properties.keys().find(|k| !required.contains(&k.as_str())) {
            return Some(format!("{at}/properties/{name} is not required"));
        }
        for (name, property) in properties {
            if let Some(why) = misfit_at(property, &format!("{at}/properties/{name}")) {
                return Some(why);
            }
        }
    }
    if let Some(items) = map.get("items")
        && let Some(why) = misfit_at(items, &format!("{at}/items"))
    {
        return Some(why);
    }
    for key in ["anyOf", "$defs", "definitions"] {
        let members: Vec<(String, &Value)> = match map.get(key) {
            Some(Value::Array(list)) => list.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
            Some(Value::Object(named)) => named.iter().map(|(k, v)| (k.clone(), v)).collect(),
            _ => Vec::new(),
        };
        for (name, member) in members {
            if let Some(why) = misfit_at(member, &format!("{at}/{key}/{name}")) {
                return Some(why);
            }
        }
    }
    None
}

/// The conversation as OpenAI's messages.
fn messages(conversation: &Conversation) -> Vec<ChatCompletionRequestMessage> {
    conversation
        .messages()
        .iter()
        .map(|(role, text)| match role {
            Speaker::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(text.clone()),
                name: None,
            }),
            Speaker::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(text.clone()),
                name: None,
            }),
            Speaker::Assistant => ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: Some(ChatCompletionRequestAssistantMessageContent::Text(text.clone())),
                ..Default::default()
            }),
        })
        .collect()
}

/// One chat completion.
pub(super) async fn complete(
    target: &Target,
    package: &Package,
    conversation: &Conversation,
    trace: Option<&str>,
) -> Result<Answer, ConnectorError> {
    let response_format = package.schema.as_ref().map(|schema| ResponseFormat::JsonSchema {
        json_schema: ResponseFormatJsonSchema {
            description: None,
            // a-z, A-Z, 0-9, `_` and `-`, at most 64.
            name: package.id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_").chars().take(64).collect(),
            schema: schema.clone(),
            // Strict decoding when the schema is in the subset it takes; the full schema is
            // checked here either way.
            strict: package.strict.then_some(true),
        },
    });
    let request = CreateChatCompletionRequest {
        model: target.model.clone(),
        messages: messages(conversation),
        response_format,
        temperature: package.params.temperature,
        max_completion_tokens: package.params.max_tokens,
        ..Default::default()
    };
    let body = serde_json::to_value(&request)
        .map_err(|e| ConnectorError::permanent(format!("cannot write the chat request: {e}")))?;
    let reply = target.post("/chat/completions", &body, trace).await?;
    let response: CreateChatCompletionResponse = serde_json::from_value(reply.body).map_err(|e| {
        ConnectorError::retryable(format!(
            "{} answered something that is not a chat completion: {e}",
            target.describe()
        ))
    })?;
    let usage = response.usage.as_ref().map_or(Value::Null, |u| {
        serde_json::json!({ "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens })
    });
    let (message, finish) = response
        .choices
        .into_iter()
        .next()
        .map(|c| (c.message, c.finish_reason))
        .ok_or_else(|| ConnectorError::retryable(format!("{} answered without a choice", target.describe())))?;
    let truncated = matches!(finish, Some(FinishReason::Length));
    match (message.refusal, message.content) {
        (Some(refusal), _) => Ok(Answer::Refusal { text: refusal, usage }),
        (None, Some(text)) => Ok(Answer::Content { text, usage, truncated }),
        (None, None) => Err(ConnectorError::retryable(format!("{} answered an empty message", target.describe()))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::strict_misfit;

    #[test]
    fn closed_objects_with_every_property_required_are_strict() {
        let plan = json!({ "type": "object", "additionalProperties": false, "required": ["lines"],
            "properties": { "lines": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                "required": ["channel"], "properties": { "channel": { "enum": ["search"] } } } } } });
        assert_eq!(strict_misfit(&plan), None);
        let open = json!({ "type": "object", "properties": { "a": { "type": "string" } }, "required": ["a"] });
        assert_eq!(strict_misfit(&open).as_deref(), Some("# does not say `additionalProperties: false`"));
        let optional = json!({ "type": "object", "additionalProperties": false, "properties": { "a": {} } });
        assert_eq!(strict_misfit(&optional).as_deref(), Some("#/properties/a is not required"));
        let nested = json!({ "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": { "a": { "allOf": [] } } });
        assert_eq!(strict_misfit(&nested).as_deref(), Some("#/properties/a uses `allOf`"));
        assert!(strict_misfit(&json!({ "type": "array" })).is_some());
    }
}
