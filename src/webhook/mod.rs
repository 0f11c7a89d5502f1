//! Webhook intake: `POST /webhooks/gitlab` authenticates, stores the delivery durably and
//! acknowledges it. No other work happens on the request path.

pub mod event;
pub mod hooks;
pub mod verify;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{debug, error, warn};

use crate::config::{WebhookSettings, REQUEST_ALLOWANCE};
use crate::metrics::Metrics;
use crate::store::{Enqueued, NewDelivery, Store};
use crate::timestamp::Timestamp;
use event::EventKind;
use verify::{AuthHeaders, HeaderCheck};

/// Longest dedup key kept as it is; a longer one is kept as `sha256:<hex>` of itself.
const MAX_DEDUP_KEY: usize = 200;

/// Longest `X-Gitlab-Event` value kept with a delivery whose event is not one GitLab sends.
const MAX_EVENT_NAME: usize = 100;

/// What the intake route needs.
pub struct Intake {
    pub settings: WebhookSettings,
    pub max_body_bytes: usize,
    /// `server.body_timeout_seconds`.
    pub body_timeout: Duration,
    /// Shared by the requests whose body must be read before they are authenticated.
    pub budget: Arc<BodyBudget>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Keep Push and Merge Request Hooks (preflight re-checks and reviews read them);
    /// otherwise they are ignored.
    pub keep_pushes: bool,
}

/// Bytes of request bodies held at once for requests not yet authenticated
/// (`server.unauthenticated_body_budget_bytes`), with [`REQUEST_ALLOWANCE`] for each.
#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Takes `bytes` more, when they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// Bytes taken from a [`BodyBudget`] for one request, given back when dropped.
struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    fn new(budget: Arc<BodyBudget>) -> Reservation {
        Reservation { budget, bytes: 0 }
    }

    /// Grows the reservation to `total` bytes; false when the budget cannot hold them.
    fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        let more = total - self.bytes;
        if self.budget.take(more) {
            self.bytes = total;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// An answer given before the body was read in full: the connection is closed with it, so
/// the rest of the body is never read.
fn answer_and_close(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).force_close().json(body)
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    OverBudget,
    Broken(String),
}

/// Reads the body, at most `limit` bytes, into a buffer of `expected` bytes to begin with
/// (the declared length). With a `reservation` (a request not yet authenticated) every byte
/// of the buffer's capacity is held against the shared budget before it is allocated.
async fn read_body(
    payload: &mut web::Payload,
    limit: usize,
    expected: usize,
    mut reservation: Option<&mut Reservation>,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    let mut grow = |body: &mut Vec<u8>, needed: usize| -> Result<(), BodyError> {
        if needed <= body.capacity() {
            return Ok(());
        }
        let capacity = needed.max(body.capacity() * 2).min(limit);
        if let Some(r) = reservation.as_deref_mut() {
            if !r.grow_to(REQUEST_ALLOWANCE + capacity) {
                return Err(BodyError::OverBudget);
            }
        }
        body.reserve_exact(capacity - body.len());
        Ok(())
    };
    grow(&mut body, expected.min(limit))?;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        let total = body.len() + chunk.len();
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        grow(&mut body, total)?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The key that makes a resent delivery a duplicate: the signed `webhook-id` when the
/// signature authenticated the delivery (`Idempotency-Key` is not signed), else
/// `Idempotency-Key`, else `webhook-id`. A key longer than [`MAX_DEDUP_KEY`] is kept as its
/// SHA-256.
fn dedup_key(headers: &HeaderMap, auth: &AuthHeaders<'_>, signed: bool) -> Option<String> {
    let key = if signed {
        auth.webhook_id
    } else {
        header(headers, "Idempotency-Key").or(auth.webhook_id)
    }?
    .trim();
    if key.is_empty() {
        None
    } else if key.len() <= MAX_DEDUP_KEY {
        Some(key.to_string())
    } else {
        let digest = Sha256::digest(key.as_bytes());
        Some(format!(
            "sha256:{}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }
}

/// The `X-Gitlab-Event` header as kept with a delivery: trimmed, any bytes read lossily,
/// at most [`MAX_EVENT_NAME`] bytes.
fn event_name(headers: &HeaderMap) -> String {
    let Some(value) = headers.get("X-Gitlab-Event") else {
        return String::new();
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    crate::redact::cut_to(text.trim(), MAX_EVENT_NAME).to_string()
}

/// `POST /webhooks/gitlab`.
pub async fn receive(
    req: HttpRequest,
    mut payload: web::Payload,
    intake: web::Data<Intake>,
) -> HttpResponse {
    let started = Instant::now();
    let headers = req.headers();
    let event_header = event_name(headers);
    let kind = EventKind::from_header(&event_header);
    let label = kind.map_or(
        if event_header.is_empty() {
            "none"
        } else {
            "other"
        },
        EventKind::label,
    );
    let auth = AuthHeaders {
        gitlab_token: header(headers, "X-Gitlab-Token"),
        webhook_id: header(headers, "webhook-id"),
        webhook_timestamp: header(headers, "webhook-timestamp"),
        webhook_signature: header(headers, "webhook-signature"),
    };
    let refuse = |reason: verify::VerifyError| {
        warn!(event = %label, %reason, "webhook refused");
        intake.metrics.delivery_received(label, "unauthorized");
        answer_and_close(StatusCode::UNAUTHORIZED, json!({"status": "unauthorized"}))
    };
    let check =
        match verify::verify_headers(&intake.settings, &auth, Timestamp::now().unix_seconds()) {
            Ok(check) => check,
            Err(reason) => return refuse(reason),
        };

    let too_large = || {
        intake.metrics.delivery_received(label, "too_large");
        warn!(event = %label, limit = intake.max_body_bytes, "webhook body too large");
        answer_and_close(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"status": "too_large"}),
        )
    };
    let over_budget = || {
        intake.metrics.delivery_received(label, "busy");
        warn!(
            event = %label,
            budget = intake.budget.limit,
            "too many unauthenticated bodies in flight; answering 503"
        );
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .force_close()
            .insert_header((RETRY_AFTER, "5"))
            .json(json!({"status": "busy"}))
    };
    let declared =
        header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > intake.max_body_bytes as u64) {
        return too_large();
    }
    // A body read before the request is authenticated is held against the shared budget:
    // its declared length at once, else as its buffer grows.
    let mut reservation = match check {
        HeaderCheck::NeedsBody {
            token_accepted: false,
        } => Some(Reservation::new(intake.budget.clone())),
        _ => None,
    };
    if reservation.is_some() && declared.is_none() {
        // GitLab always declares the length of a hook's body; a body that must be read
        // before it can be authenticated is read only when its size is known up front, so
        // its whole buffer is held against the budget once and never grows.
        intake.metrics.delivery_received(label, "length_required");
        warn!(event = %label, "signed webhook without Content-Length refused with 411");
        return answer_and_close(
            StatusCode::LENGTH_REQUIRED,
            json!({"status": "length_required"}),
        );
    }
    if let Some(r) = reservation.as_mut() {
        if !r.grow_to(REQUEST_ALLOWANCE) {
            return over_budget();
        }
    }
    let expected = declared.unwrap_or(0) as usize;
    let read = read_body(
        &mut payload,
        intake.max_body_bytes,
        expected,
        reservation.as_mut(),
    );
    let body = match tokio::time::timeout(intake.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => return too_large(),
        Ok(Err(BodyError::OverBudget)) => return over_budget(),
        Ok(Err(BodyError::Broken(e))) => {
            warn!(event = %label, error = %e, "webhook body could not be read");
            intake.metrics.delivery_received(label, "bad_request");
            return answer_and_close(StatusCode::BAD_REQUEST, json!({"status": "bad_request"}));
        }
        Err(_) => {
            warn!(
                event = %label,
                timeout_seconds = intake.body_timeout.as_secs(),
                "webhook body not received in time; answering 408"
            );
            intake.metrics.delivery_received(label, "timeout");
            return answer_and_close(StatusCode::REQUEST_TIMEOUT, json!({"status": "timeout"}));
        }
    };

    let signed = matches!(check, HeaderCheck::NeedsBody { .. });
    if signed {
        let now = Timestamp::now().unix_seconds();
        if let Err(reason) = verify::verify_signature(&intake.settings, &auth, &body, now) {
            return refuse(reason);
        }
    }
    drop(reservation);

    // Events GitLab sends but the bot does not use are acknowledged and not kept; a delivery
    // without an event header, or with one GitLab never sends, is kept (marked ignored by
    // the worker) for inspection.
    let push = intake.keep_pushes
        && (event_header.eq_ignore_ascii_case(hooks::PUSH_HOOK)
            || event_header.eq_ignore_ascii_case(hooks::MERGE_REQUEST_HOOK));
    if kind.is_none() && event_header.ends_with(" Hook") && !push {
        debug!(event = %event_header, "event not used; acknowledged and ignored");
        intake.metrics.delivery_received(label, "ignored");
        return answer(StatusCode::ACCEPTED, json!({"status": "ignored"}));
    }

    let delivery = NewDelivery {
        event: event_header,
        dedup_key: dedup_key(headers, &auth, signed),
        event_uuid: header(headers, "X-Gitlab-Event-UUID").map(str::to_string),
        instance: header(headers, "X-Gitlab-Instance").map(str::to_string),
        received_at: Timestamp::now(),
        body,
    };
    match intake.store.enqueue(delivery).await {
        Ok(Enqueued::New(id)) => {
            intake.metrics.delivery_received(label, "accepted");
            intake.metrics.ack_latency(started.elapsed());
            debug!(delivery_id = %id, event = %label, "delivery stored");
            answer(
                StatusCode::ACCEPTED,
                json!({"status": "accepted", "delivery_id": id}),
            )
        }
        Ok(Enqueued::Duplicate(id)) => {
            intake.metrics.delivery_received(label, "duplicate");
            intake.metrics.ack_latency(started.elapsed());
            debug!(delivery_id = %id, event = %label, "duplicate delivery acknowledged");
            answer(
                StatusCode::ACCEPTED,
                json!({"status": "duplicate", "delivery_id": id}),
            )
        }
        Err(e) => {
            error!(error = %e, event = %label, "cannot store delivery; answering 503");
            intake.metrics.delivery_received(label, "store_unavailable");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable"}),
            )
        }
    }
}

/// A payload of `tests/fixtures/gitlab/`, for tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/gitlab/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
