//! Chat notifications through Slack-compatible incoming webhooks.
//!
//! Messages are queued in the store (an outbox) while a diagnosis is delivered and sent by
//! their own loop, so a chat outage never holds up a GitLab comment, and a message survives
//! restarts. Messages with the same group key inside the collapse window are folded into one:
//! the first is sent at once (counting any repeats that arrived while it waited), the rest are
//! counted and announced in one follow-up when the window closes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{info, warn, Instrument};

use crate::config::NotifySettings;
use crate::metrics::Metrics;
use crate::report::slack::{self, ChatMessage};
use crate::retry::{run_rounds, Backoff, Next, RunState};
use crate::store::{ChatJob, ChatQueued, ChatResult, NewChat, Store, StoreError};
use crate::timestamp::Timestamp;

/// The chat side of notifications. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    store: Store,
    settings: Arc<NotifySettings>,
    http: reqwest::Client,
    metrics: Option<Arc<Metrics>>,
    queued: Arc<Notify>,
}

/// Longest pause between two attempts at one message.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How long a sender owns a claimed message.
const LEASE: Duration = Duration::from_secs(120);

/// What one pass of the sender did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// Failed; due again later.
    Retrying,
    /// Failed for the last time (or cannot be sent at all).
    GivenUp,
}

impl Chat {
    pub fn new(
        store: Store,
        settings: NotifySettings,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Chat> {
        let http = reqwest::Client::builder()
            .timeout(settings.chat_timeout)
            .user_agent(concat!("trigger-doctor/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Chat {
            store,
            settings: Arc::new(settings),
            http,
            metrics,
            queued: Arc::new(Notify::new()),
        })
    }

    /// Queues a message for the route of `project_path`; `None` when no route matches.
    pub async fn queue(
        &self,
        project_path: &str,
        group_key: String,
        headline: String,
        message: &ChatMessage,
        collapse: bool,
        sliding: bool,
    ) -> Result<Option<ChatQueued>, StoreError> {
        if self.settings.route_for(project_path).is_none() {
            return Ok(None);
        }
        let queued = self
            .store
            .enqueue_chat(NewChat {
                group_key,
                route: project_path.to_string(),
                headline,
                payload: serde_json::to_string(message).expect("chat messages serialise"),
                window: if collapse {
                    self.settings.collapse_window
                } else {
                    Duration::ZERO
                },
                sliding,
            })
            .await?;
        if matches!(queued, ChatQueued::New(_)) {
            self.queued.notify_waiters();
        }
        Ok(Some(queued))
    }

    /// Sends the next due message, if any.
    pub async fn send_due(&self, owner: &str) -> Result<Option<Sent>, StoreError> {
        let Some(job) = self.store.claim_chat(owner, LEASE).await? else {
            return Ok(None);
        };
        let kind = if job.first { "message" } else { "follow_up" };
        let span = tracing::info_span!("chat", chat_id = job.id, kind, attempt = job.attempts);
        let outcome = self.send(&job).instrument(span).await;
        let (result, sent) = match outcome {
            Ok(()) => (
                ChatResult::Sent {
                    repeats: job.repeats,
                },
                Sent::Delivered,
            ),
            Err((error, permanent)) => {
                if permanent || job.attempts >= self.settings.chat_max_attempts {
                    warn!(chat_id = job.id, %error, "chat message given up");
                    (
                        ChatResult::Failed {
                            error,
                            retry_at: None,
                        },
                        Sent::GivenUp,
                    )
                } else {
                    let delay = retry_delay(self.settings.chat_retry_base, job.attempts);
                    warn!(chat_id = job.id, %error, retry_in_ms = delay.as_millis() as u64, "chat message failed; will retry");
                    (
                        ChatResult::Failed {
                            error,
                            retry_at: Some(Timestamp(
                                self.store.now().0 + delay.as_millis() as i64,
                            )),
                        },
                        Sent::Retrying,
                    )
                }
            }
        };
        if let Some(m) = &self.metrics {
            m.chat_message(
                kind,
                match sent {
                    Sent::Delivered => "sent",
                    Sent::Retrying => "retried",
                    Sent::GivenUp => "failed",
                },
            );
        }
        self.store.settle_chat(&job, result).await?;
        Ok(Some(sent))
    }

    /// Posts one claimed message; the error says whether trying again can help.
    async fn send(&self, job: &ChatJob) -> Result<(), (String, bool)> {
        let route = self.settings.route_for(&job.route).ok_or_else(|| {
            (
                "no chat route matches the project any more".to_string(),
                true,
            )
        })?;
        let window = self.settings.collapse_window;
        let message = if job.first {
            let message: ChatMessage = serde_json::from_str(&job.payload)
                .map_err(|e| (format!("stored message is unreadable: {e}"), true))?;
            if job.repeats > 0 {
                message.with_repeats(job.repeats as u64, window)
            } else {
                message
            }
        } else {
            slack::repeats_message(
                &job.headline,
                (job.repeats - job.repeats_sent).max(0) as u64,
                window,
            )
        };
        let response = self
            .http
            .post(route.url.expose())
            .json(&message.to_json())
            .send()
            .await
            .map_err(|e| {
                // reqwest's own message names the URL, which is the secret: describe it instead.
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "transport error"
                };
                (format!("chat webhook {what}"), false)
            })?;
        let status = response.status();
        if status.is_success() {
            info!(route = %route.pattern, "chat message sent");
            return Ok(());
        }
        // 4xx other than 429 will not get better by sending the same body again.
        let permanent = status.is_client_error() && status.as_u16() != 429;
        Err((
            format!("chat webhook answered HTTP {}", status.as_u16()),
            permanent,
        ))
    }

    /// Sends due messages until `state` leaves [`RunState::Running`].
    pub async fn run(self, owner: String, state: watch::Receiver<RunState>) {
        let (chat, owner) = (&self, owner.as_str());
        run_rounds(state, self.queued.clone(), move || async move {
            match chat.send_due(owner).await {
                Ok(Some(_)) => Next::Now,
                Ok(None) => Next::After(match chat.store.next_chat_due().await {
                    Ok(Some(at)) => {
                        Duration::from_millis((at.0 - chat.store.now().0).clamp(10, 5_000) as u64)
                    }
                    _ => Duration::from_secs(5),
                }),
                Err(error) => {
                    warn!(%error, "cannot reach the store for chat messages");
                    Next::After(Duration::from_secs(5))
                }
            }
        })
        .await
    }
}

/// `base · 2^(attempts-1)`, at most an hour.
fn retry_delay(base: Duration, attempts: u32) -> Duration {
    Backoff {
        base,
        max: MAX_RETRY_DELAY,
    }
    .delay(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 3), Duration::from_secs(20));
        assert_eq!(retry_delay(base, 40), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(Duration::ZERO, 4), Duration::ZERO);
    }
}
