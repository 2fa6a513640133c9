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
use reqwest::Method;
use serde_json::Value;

use super::prompts::Package;
use super::{Answer, Conversation, Speaker, Target};
use crate::web::Call;

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
            strict: None,
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
    let call = Call {
        body: Some(&body),
        // Asking again is harmless: a completion changes nothing on the provider's side.
        idempotent: true,
        trace_id: trace,
        ..Call::new(Method::POST, "/chat/completions")
    };
    let reply = target.api.call(&call).await?;
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
