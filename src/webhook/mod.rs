//! Webhook intake: `POST /webhooks/gitlab` authenticates, stores the delivery durably and
//! acknowledges it. No other work happens on the request path.

pub mod event;
pub mod verify;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::{debug, error, warn};

use crate::config::WebhookSettings;
use crate::metrics::Metrics;
use crate::store::{Enqueued, NewDelivery, Store};
use crate::timestamp::Timestamp;
use event::EventKind;
use verify::{AuthHeaders, HeaderCheck};

/// Longest dedup key kept; a longer `Idempotency-Key` is not trusted for dedup.
const MAX_DEDUP_KEY: usize = 200;

/// What the intake route needs.
pub struct Intake {
    pub settings: WebhookSettings,
    pub max_body_bytes: usize,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// `POST /webhooks/gitlab`.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    intake: web::Data<Intake>,
) -> HttpResponse {
    let started = Instant::now();
    let headers = req.headers();
    let event_header = header(headers, "X-Gitlab-Event")
        .unwrap_or("")
        .trim()
        .to_string();
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
        answer(StatusCode::UNAUTHORIZED, json!({"status": "unauthorized"}))
    };
    let check = match verify::verify_headers(&intake.settings, &auth) {
        Ok(check) => check,
        Err(reason) => return refuse(reason),
    };

    let too_large = || {
        intake.metrics.delivery_received(label, "too_large");
        warn!(event = %label, limit = intake.max_body_bytes, "webhook body too large");
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"status": "too_large"}),
        )
    };
    let declared =
        header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > intake.max_body_bytes as u64) {
        return too_large();
    }
    let body = match payload.to_bytes_limited(intake.max_body_bytes).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            warn!(event = %label, error = %e, "webhook body could not be read");
            intake.metrics.delivery_received(label, "bad_request");
            return answer(StatusCode::BAD_REQUEST, json!({"status": "bad_request"}));
        }
        Err(_) => return too_large(),
    };

    if check == HeaderCheck::NeedsBody {
        let now = Timestamp::now().unix_seconds();
        if let Err(reason) = verify::verify_signature(&intake.settings, &auth, &body, now) {
            return refuse(reason);
        }
    }

    if kind.is_none() && !event_header.is_empty() {
        debug!(event = %event_header, "event not used; acknowledged and ignored");
        intake.metrics.delivery_received(label, "ignored");
        return answer(StatusCode::ACCEPTED, json!({"status": "ignored"}));
    }

    let dedup_key = header(headers, "Idempotency-Key")
        .or(auth.webhook_id)
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_DEDUP_KEY)
        .map(str::to_string);
    let delivery = NewDelivery {
        event: event_header,
        dedup_key,
        event_uuid: header(headers, "X-Gitlab-Event-UUID").map(str::to_string),
        instance: header(headers, "X-Gitlab-Instance").map(str::to_string),
        received_at: Timestamp::now(),
        body: body.to_vec(),
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
