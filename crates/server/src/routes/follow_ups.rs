//! Follow-up records of an order (R34).

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordertrail_domain::decide::log_follow_up;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::follow_up::{FollowUp, NewFollowUp};
use ordertrail_domain::ids::{FollowUpId, OrderId};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Logs a contact or progress note on the order.
#[utoipa::path(post, operation_id = "log_follow_up", path = "/api/v1/orders/{id}/follow-ups", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = NewFollowUp,
    responses((status = 201, description = "The follow-up, logged", body = FollowUp), CommonProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(input): ApiJson<NewFollowUp>,
) -> ApiResult<(StatusCode, Json<FollowUp>)> {
    let follow_up_id = FollowUpId(Uuid::now_v7());
    // The record the domain decided on, kept to answer with once it is committed.
    let logged = Arc::new(Mutex::new(None));
    let decided = logged.clone();
    app::change_order(&state, caller.acting(), id, move |order, ctx| {
        let decision = log_follow_up(order, follow_up_id, input.clone(), ctx)?;
        if let Some((OrderEvent::FollowUpLogged { follow_up }, _)) = decision.first() {
            *decided.lock().unwrap_or_else(|p| p.into_inner()) = Some((**follow_up).clone());
        }
        Ok(decision)
    })
    .await?;
    let logged = logged.lock().unwrap_or_else(|p| p.into_inner()).take();
    logged
        .map(|f| (StatusCode::CREATED, Json(f)))
        .ok_or_else(|| ApiError::not_found("follow-up"))
}

/// The order's follow-ups, newest first.
#[utoipa::path(get, operation_id = "list_follow_ups", path = "/api/v1/orders/{id}/follow-ups", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The follow-ups, newest first", body = Vec<FollowUp>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<Vec<FollowUp>>> {
    app::visible_order(&state, &caller, id).await?;
    caller.require_staff()?;
    Ok(Json(state.store.follow_ups(id).await?))
}
