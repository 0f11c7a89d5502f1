//! `GET /ui/deliveries` and `POST /ui/deliveries/{id}/replay`: parked deliveries and their replay.

use actix_web::http::header;
use serde::Serialize;
use tracing::info;

use crate::store::{DeliveryId, DeliveryState};

use super::*;

#[derive(Serialize)]
struct ParkedView {
    id: String,
    event: String,
    received_at: String,
    parked_at: String,
    attempts: u32,
    error: String,
}

/// `GET /ui/deliveries`: parked deliveries with their error and a Replay button.
pub(super) async fn deliveries_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let parked = ui
        .store
        .list_parked(200)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let rows: Vec<ParkedView> = parked
        .iter()
        .map(|d| ParkedView {
            id: d.id.to_string(),
            event: d.event.clone(),
            received_at: minute(d.received_at),
            parked_at: d.parked_at.map(minute).unwrap_or_default(),
            attempts: d.attempts,
            error: crate::redact::redact(d.last_error.as_deref().unwrap_or("")).into_owned(),
        })
        .collect();
    let message = params(&req).get("replayed").and_then(|id| {
        id.parse::<i64>()
            .ok()
            .map(|id| format!("Delivery {id} is back in the queue."))
    });
    let mut c = tera::Context::new();
    c.insert("rows", &rows);
    c.insert("message", &message);
    Ok(page(
        StatusCode::OK,
        "deliveries.html",
        &Frame::of(&ui, &viewer, "deliveries"),
        Some(&c),
    ))
}

/// `POST /ui/deliveries/{id}/replay`: puts a parked delivery back in the queue.
pub(super) async fn replay_answer(
    req: HttpRequest,
    ui: web::Data<Ui>,
    id: web::Path<String>,
    form: Option<web::Form<CsrfForm>>,
) -> Answer {
    let viewer = poster(&req, &ui, form)?;
    let id = id.parse::<i64>().ok().filter(|n| *n > 0).map(DeliveryId);
    let record = match id {
        Some(id) => ui
            .store
            .get(id)
            .await
            .map_err(|e| store_down(&ui, &viewer, e))?,
        None => None,
    };
    let Some(record) = record else {
        return Err(page(
            StatusCode::NOT_FOUND,
            "error.html",
            &Frame::of(&ui, &viewer, "error"),
            Some(&error_context(
                "No such delivery",
                "No delivery has that number.",
            )),
        )
        .into());
    };
    let replayed = record.state == DeliveryState::Parked
        && ui
            .store
            .requeue(record.id)
            .await
            .map_err(|e| store_down(&ui, &viewer, e))?;
    if !replayed {
        return Err(page(
            StatusCode::CONFLICT,
            "error.html",
            &Frame::of(&ui, &viewer, "error"),
            Some(&error_context(
                "Not replayed",
                &format!(
                    "Delivery {} is {}, not parked: there is nothing to replay.",
                    record.id,
                    record.state.as_str()
                ),
            )),
        )
        .into());
    }
    info!(delivery_id = %record.id, by = %viewer.who, "delivery replayed from the dashboard");
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/ui/deliveries?replayed={}", record.id),
        ))
        .finish())
}
