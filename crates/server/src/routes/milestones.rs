//! An order's milestones: list, replan or reassign, tick checklists, complete with evidence.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use ordertrail_domain::decide::{MilestoneChange, MilestoneCompletion, change_milestone, complete_milestone};
use ordertrail_domain::ids::{MilestoneId, OrderId};
use ordertrail_domain::order::{Milestone, Order};

fn the_milestone(order: Order, id: MilestoneId) -> ApiResult<Json<Milestone>> {
    order
        .milestones
        .into_iter()
        .find(|m| m.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("milestone"))
}

/// The order's milestones in plan order.
#[utoipa::path(get, operation_id = "list_milestones", path = "/api/v1/orders/{id}/milestones", tag = "milestones", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The milestones in plan order", body = Vec<Milestone>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<Vec<Milestone>>> {
    Ok(Json(app::visible_order(&state, &caller, id).await?.milestones))
}

/// Replans a milestone (new date and the reason), changes its owner, or ticks checklist items.
#[utoipa::path(patch, operation_id = "change_milestone", path = "/api/v1/orders/{id}/milestones/{mid}", tag = "milestones", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("mid" = String, Path, format = Uuid)),
    request_body = MilestoneChange,
    responses((status = 200, description = "The milestone as changed", body = Milestone),
        (status = 409, description = "Stale version, completed milestone or closed order", body = Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, mid)): ApiPath<(OrderId, MilestoneId)>,
    ApiJson(change): ApiJson<MilestoneChange>,
) -> ApiResult<Json<Milestone>> {
    let owner_exists = match change.owner_id {
        Some(Some(user)) => Some(
            state
                .store
                .user(user)
                .await?
                .is_some_and(|u| u.roles.iter().any(|r| r.is_staff())),
        ),
        _ => None,
    };
    let order = app::change_order(&state, caller.acting(), id, move |order, ctx| {
        change_milestone(order, mid, change.clone(), owner_exists, ctx)
    })
    .await?;
    the_milestone(order, mid)
}

/// Completes a milestone with its actual time, evidence and checklist.
#[utoipa::path(post, operation_id = "complete_milestone", path = "/api/v1/orders/{id}/milestones/{mid}/complete", tag = "milestones", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("mid" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = MilestoneCompletion,
    responses((status = 200, description = "The milestone, completed", body = Milestone),
        (status = 409, description = "Stale version, already completed or closed order", body = Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, mid)): ApiPath<(OrderId, MilestoneId)>,
    ApiJson(completion): ApiJson<MilestoneCompletion>,
) -> ApiResult<Json<Milestone>> {
    let order = app::change_order(&state, caller.acting(), id, move |order, ctx| {
        complete_milestone(order, mid, completion.clone(), ctx)
    })
    .await?;
    the_milestone(order, mid)
}
