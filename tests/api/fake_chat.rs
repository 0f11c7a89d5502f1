//! A fake chat server (a Slack incoming webhook) behind wiremock. It answers like Slack: a good
//! post gets 200 with the text body `ok`; a body that is not a JSON object gets 400
//! `invalid_payload`; a post with neither a `text` string nor `blocks`/`attachments` gets 400
//! `no_text`; any other path gets 404 `no_service`. While down it answers 500 `server_error`.
//! Only posts answered 200 count as delivered messages.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use serde_json::Value;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Path of the fake incoming webhook.
pub const WEBHOOK_PATH: &str = "/services/T000/B000/XXXX";

#[derive(Default)]
struct ChatState {
    /// Bodies of the posts answered 200.
    messages: Vec<Value>,
    /// Every request to the webhook path.
    attempts: usize,
    /// When set, every request to the webhook path gets this status and body.
    failure: Option<(u16, String)>,
}

pub struct FakeChat {
    pub server: MockServer,
    state: Arc<Mutex<ChatState>>,
}

struct Responder {
    state: Arc<Mutex<ChatState>>,
}

fn text(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "text/html")
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        if request.url.path() != WEBHOOK_PATH {
            return text(404, "no_service");
        }
        state.attempts += 1;
        if let Some((status, body)) = &state.failure {
            return text(*status, body);
        }
        if request.method.as_str() != "POST" {
            return text(400, "invalid_payload");
        }
        let Ok(message @ Value::Object(_)) = serde_json::from_slice::<Value>(&request.body) else {
            return text(400, "invalid_payload");
        };
        let has_text = message["text"].as_str().is_some_and(|t| !t.is_empty());
        let has_blocks = ["blocks", "attachments"]
            .iter()
            .any(|k| message[*k].as_array().is_some_and(|a| !a.is_empty()));
        if !message["text"].is_null() && !message["text"].is_string() {
            return text(400, "invalid_payload");
        }
        if !has_text && !has_blocks {
            return text(400, "no_text");
        }
        state.messages.push(message);
        text(200, "ok")
    }
}

impl FakeChat {
    pub async fn start() -> FakeChat {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(ChatState::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        FakeChat { server, state }
    }

    /// The incoming-webhook URL to configure the bot with.
    pub fn url(&self) -> String {
        format!("{}{WEBHOOK_PATH}", self.server.uri())
    }

    /// JSON bodies of the posts delivered (answered 200), oldest first.
    pub fn messages(&self) -> Vec<Value> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every request to the webhook URL, delivered or not.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    /// While down, answer 500 `server_error` and deliver nothing.
    pub fn set_down(&self, down: bool) {
        self.set_failure(down.then_some((500, "server_error")));
    }

    /// Answer every request with this status and text body (e.g. `(404, "no_service")` for a
    /// removed webhook, `(403, "invalid_token")`, `(410, "channel_is_archived")`), or behave
    /// normally again with `None`.
    pub fn set_failure(&self, failure: Option<(u16, &str)>) {
        self.state.lock().unwrap().failure = failure.map(|(s, b)| (s, b.to_string()));
    }
}
