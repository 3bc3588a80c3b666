//! Orders: create, read, list with filters, move through the workflow, and the audit log.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{OrderPage, OrderView};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use ordertrail_domain::access::FieldVisibility;
use ordertrail_domain::decide::{NewOrder, TransitionRequest, transition as decide_transition};
use ordertrail_domain::ids::{CustomerId, OrderId, UserId};
use ordertrail_domain::order::OrderType;
use ordertrail_domain::progress::Health;
use ordertrail_store::{OrderQuery, StoredEvent};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Records an order: its number is generated, its milestones planned from the workflow.
#[utoipa::path(post, operation_id = "create_order", path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    responses((status = 201, description = "The order, recorded, with its number and planned milestones", body = OrderView), CommonProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<NewOrder>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let order = app::create_order(&state, caller.acting(), input).await?;
    Ok((StatusCode::CREATED, Json(OrderView::new(order, &caller, &state))))
}

/// One order with its milestones and derived fields (phase, % complete, next milestone, health, blockers).
#[utoipa::path(get, operation_id = "get_order", path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The order", body = OrderView), CommonProblems))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<OrderView>> {
    let order = app::visible_order(&state, &caller, id).await?;
    Ok(Json(OrderView::new(order, &caller, &state)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exact status id, e.g. `in_production`.
    status: Option<String>,
    /// Health now: `on_track`, `at_risk` or `late`.
    health: Option<Health>,
    /// The owner's user id.
    #[param(value_type = Option<String>, format = Uuid)]
    owner: Option<UserId>,
    #[param(value_type = Option<String>, format = Uuid)]
    customer: Option<CustomerId>,
    order_type: Option<OrderType>,
    /// Promised delivery before this date (YYYY-MM-DD).
    due_before: Option<NaiveDate>,
    /// Text in the order number, title, customer name or tags.
    q: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    limit: Option<u32>,
}

/// The orders the caller may see, newest first, filtered, a page at a time.
#[utoipa::path(get, operation_id = "list_orders", path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "A page of orders", body = OrderPage), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<OrderPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            Some(OrderId(Uuid::parse_str(c).map_err(|_| {
                ApiError::bad_request("cursor is not one this API gave out")
            })?))
        }
    };
    if q.q.as_deref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::bad_request("q must be at most 200 characters"));
    }
    let query = OrderQuery {
        visibility: app::visibility(&state, &caller),
        status: q.status,
        health: q.health,
        owner: q.owner,
        customer: q.customer,
        order_type: q.order_type,
        due_before: q.due_before,
        text: q.q,
        before,
        limit: limit + 1,
        today: state.local_date(state.now()),
        late_after_days: state.org.health.late_after_days,
    };
    let mut orders = state.store.list_orders(&query).await?;
    let next_cursor = if orders.len() > limit as usize {
        orders.truncate(limit as usize);
        orders.last().map(|o| o.id.to_string())
    } else {
        None
    };
    let items = orders.into_iter().map(|o| OrderView::new(o, &caller, &state)).collect();
    Ok(Json(OrderPage { items, next_cursor }))
}

/// Moves the order to another status, if the workflow has that transition from here, the acting role may
/// make it, and every guard holds.
#[utoipa::path(post, operation_id = "transition_order", path = "/api/v1/orders/{id}/transitions", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The order in its new status", body = OrderView),
        (status = 409, description = "Stale expected_version, or no such transition from the current status", body = Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(req): ApiJson<TransitionRequest>,
) -> ApiResult<Json<OrderView>> {
    let order = app::change_order(&state, caller.acting(), id, move |order, ctx| {
        decide_transition(order, req.clone(), ctx)
    })
    .await?;
    Ok(Json(OrderView::new(order, &caller, &state)))
}

/// The order's audit log: every change, who made it in which role, when and why, with its hash chain.
/// The log keeps every value as it was recorded, amounts and customer contacts included, so it is shown only
/// to roles that may see those (sales, finance, admin).
#[utoipa::path(get, operation_id = "list_order_events", path = "/api/v1/orders/{id}/events", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The events, oldest first", body = Vec<StoredEvent>), CommonProblems))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<Vec<StoredEvent>>> {
    app::visible_order(&state, &caller, id).await?;
    let visible = FieldVisibility::for_role(caller.role);
    if !(visible.internal && visible.money && visible.customer_contact) {
        return Err(ApiError::forbidden(format!(
            "the audit log shows amounts and customer contacts, which the role {} may not see",
            caller.role
        )));
    }
    Ok(Json(state.store.events(id.0).await?))
}
