//! Change orders of an order (R7, R14, R17): draft with items and reason, finance's cost estimate, operations'
//! timeline, the sales director's approval, sending to the client, the client's written answer, withdrawal.
//! Each step only by the role the RABSIC matrix gives it, in order. The client's approval changes the order's
//! amount, promised date and milestones in the same transaction.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordertrail_domain::change_order::{
    ChangeOrder, ChangeOrderId, ChangeOrderSummary, ClientResponseInput, CostEstimateInput, NewChangeOrder,
    TimelineEstimateInput, summarize,
};
use ordertrail_domain::decide::{ChangeOrderCommand, change_change_order};
use ordertrail_domain::ids::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A note with a sign-off (internal approval, sending to the client).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffNote {
    #[serde(default)]
    pub note: Option<String>,
}

/// Why a change order is withdrawn.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub reason: String,
}

/// An order's change orders and what they add up to (R17).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOrders {
    pub change_orders: Vec<ChangeOrder>,
    pub summary: ChangeOrderSummary,
}

async fn act(
    state: &AppState,
    caller: &Caller,
    order_id: OrderId,
    id: ChangeOrderId,
    command: ChangeOrderCommand,
) -> ApiResult<ChangeOrder> {
    let policy = state.org.change_order_policy.clone();
    let order = app::change_order(state, caller.acting(), order_id, move |order, ctx| {
        change_change_order(order, id, command.clone(), &policy, ctx)
    })
    .await?;
    order
        .change_order(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("change order"))
}

/// Drafts a change order: its items (each with an amount) and reason, optionally the issue it resolves.
#[utoipa::path(post, operation_id = "draft_change_order", path = "/api/v1/orders/{id}/change-orders", tag = "change-orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = NewChangeOrder,
    responses((status = 201, description = "The change order, drafted", body = ChangeOrder), (status = 409, description = "The order is closed", body = crate::error::Problem, content_type = "application/problem+json"), CommonProblems))]
pub async fn draft(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(input): ApiJson<NewChangeOrder>,
) -> ApiResult<(StatusCode, Json<ChangeOrder>)> {
    let co = act(
        &state,
        &caller,
        id,
        ChangeOrderId(Uuid::now_v7()),
        ChangeOrderCommand::Draft(input),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(co)))
}

/// The order's change orders with their count and amounts against the original order amount (R17).
#[utoipa::path(get, operation_id = "list_change_orders", path = "/api/v1/orders/{id}/change-orders", tag = "change-orders", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The change orders and their summary", body = ChangeOrders), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<ChangeOrders>> {
    let order = app::visible_order(&state, &caller, id).await?;
    caller.require_staff()?;
    let summary = summarize(&order.change_orders, &order.original_amount());
    Ok(Json(ChangeOrders {
        change_orders: order.change_orders,
        summary,
    }))
}

macro_rules! change_order_step {
    ($name:ident, $op:literal, $path:literal, $input:ty, $command:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, operation_id = $op, path = $path, tag = "change-orders", security(("bearer" = [])),
            params(("id" = String, Path, format = Uuid), ("change_order_id" = String, Path, format = Uuid),
                ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
            request_body = $input,
            responses((status = 200, description = "The change order after the step", body = ChangeOrder),
                (status = 409, description = "The step is out of order", body = crate::error::Problem, content_type = "application/problem+json"),
                CommonProblems))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            ApiPath((id, change_order_id)): ApiPath<(OrderId, ChangeOrderId)>,
            ApiJson(input): ApiJson<$input>,
        ) -> ApiResult<Json<ChangeOrder>> {
            let command: fn($input) -> ChangeOrderCommand = $command;
            Ok(Json(act(&state, &caller, id, change_order_id, command(input)).await?))
        }
    };
}

change_order_step!(
    estimate_cost,
    "estimate_change_order_cost",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/cost-estimate",
    CostEstimateInput,
    ChangeOrderCommand::EstimateCost,
    "Finance prices the change (its items as priced)."
);
change_order_step!(
    estimate_timeline,
    "estimate_change_order_timeline",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/timeline-estimate",
    TimelineEstimateInput,
    ChangeOrderCommand::EstimateTimeline,
    "Operations times the change (days the delivery moves)."
);
change_order_step!(
    approve_internally,
    "approve_change_order_internally",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/approve",
    SignoffNote,
    |s| ChangeOrderCommand::ApproveInternally { note: s.note },
    "The sales director approves it internally (both estimates first)."
);
change_order_step!(
    send_to_client,
    "send_change_order_to_client",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/send",
    SignoffNote,
    |s| ChangeOrderCommand::SendToClient { note: s.note },
    "Sends it to the client for their written approval."
);
change_order_step!(
    client_response,
    "record_change_order_client_response",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/client-response",
    ClientResponseInput,
    ChangeOrderCommand::RecordClientResponse,
    "Records the client's written approval (who, when, channel, evidence or attachment) or decline. Approval changes the order's amount, promised date and milestones, and says whether an extra deposit is due."
);
change_order_step!(
    withdraw,
    "withdraw_change_order",
    "/api/v1/orders/{id}/change-orders/{change_order_id}/withdraw",
    Withdrawal,
    |w| ChangeOrderCommand::Withdraw { reason: w.reason },
    "Withdraws it before the client approved it."
);
