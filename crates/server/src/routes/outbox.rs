//! The outbox as people see it: what was sent, what waits for review (client-update drafts), what failed for
//! good (dead letters), and the two things a person does with them: retry a dead letter, send a draft.

use super::CommonProblems;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use ordertrail_domain::DomainError;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::role::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A message in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    #[schema(format = Uuid)]
    pub id: Uuid,
    /// The order it is about (or the digests' stream).
    #[schema(format = Uuid)]
    pub stream_id: Uuid,
    /// `message` (a notification), `webhook.order_event`, `issue.escalation`, `dunning.<step>`, ...
    pub kind: String,
    pub dedupe_key: String,
    /// pending, claimed, sent, failed (a dead letter), draft (waits for review).
    pub state: String,
    pub attempts: i64,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// What the message carries (for a client-update draft: the drafted update).
    pub payload: serde_json::Value,
}

impl From<ordertrail_store::OutboxEntry> for OutboxView {
    fn from(e: ordertrail_store::OutboxEntry) -> Self {
        OutboxView {
            id: e.id,
            stream_id: e.stream_id,
            kind: e.kind,
            dedupe_key: e.dedupe_key,
            state: e.state,
            attempts: e.attempts,
            due_at: e.due_at,
            created_at: e.created_at,
            finished_at: e.finished_at,
            last_error: e.last_error,
            payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxFilter {
    /// pending, claimed, sent, failed (dead letters) or draft.
    pub state: Option<String>,
    /// Only the messages of this order.
    pub order_id: Option<Uuid>,
    /// At most this many (1-500, default 100).
    pub limit: Option<u32>,
}

const STATES: [&str; 5] = ["pending", "claimed", "sent", "failed", "draft"];

/// The outbox, newest first (admin; a sales director or account manager sees an order's messages with
/// `order_id`).
#[utoipa::path(get, operation_id = "list_outbox", path = "/api/v1/outbox", tag = "outbox", security(("bearer" = [])),
    params(OutboxFilter),
    responses((status = 200, description = "Messages, newest first", body = Vec<OutboxView>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<OutboxFilter>,
) -> ApiResult<Json<Vec<OutboxView>>> {
    let limit = filter.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(DomainError::invalid("limit", "must be between 1 and 500").into());
    }
    if let Some(s) = filter.state.as_deref()
        && !STATES.contains(&s)
    {
        return Err(DomainError::invalid("state", format!("must be one of {}", STATES.join(", "))).into());
    }
    match filter.order_id {
        Some(order) => {
            crate::app::visible_order(&state, &caller, OrderId(order)).await?;
            caller.require_staff()?;
        }
        None if caller.role == Role::Admin => {}
        None => {
            return Err(ApiError::forbidden(
                "only an admin lists the whole outbox; give order_id",
            ));
        }
    }
    let rows = state
        .store
        .outbox(filter.state.as_deref(), filter.order_id, limit)
        .await?;
    Ok(Json(rows.into_iter().map(OutboxView::from).collect()))
}

/// Retries a dead letter now, its attempts counted afresh (admin).
#[utoipa::path(post, operation_id = "retry_outbox_message", path = "/api/v1/outbox/{id}/retry", tag = "outbox", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "Back in line to be sent"),
        (status = 409, description = "Not a dead letter", body = crate::error::Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden("only an admin retries dead letters"));
    }
    release(&state, id, "failed", "is not a dead letter").await
}

/// Sends a client-update draft that waited for review (the account manager of its order, or an admin).
#[utoipa::path(post, operation_id = "send_outbox_draft", path = "/api/v1/outbox/{id}/send", tag = "outbox", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "Queued to be sent now"),
        (status = 409, description = "Not a draft", body = crate::error::Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    let rows = state.store.outbox(Some("draft"), None, 500).await?;
    let Some(draft) = rows.iter().find(|r| r.id == id) else {
        return Err(DomainError::Conflict("no draft with this id waits for review".into()).into());
    };
    crate::app::visible_order(&state, &caller, OrderId(draft.stream_id)).await?;
    if !matches!(caller.role, Role::AccountManager | Role::SalesCoordinator | Role::Admin) {
        return Err(ApiError::forbidden("the account manager sends client updates"));
    }
    release(&state, id, "draft", "is not a draft").await
}

async fn release(state: &AppState, id: Uuid, from: &str, not: &str) -> ApiResult<Json<serde_json::Value>> {
    if state.store.release_outbox(id, &[from], state.now()).await? {
        Ok(Json(serde_json::json!({ "id": id, "state": "pending" })))
    } else {
        Err(DomainError::Conflict(format!("message {id} {not}")).into())
    }
}
