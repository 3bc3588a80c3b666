//! The payment schedule of an order (R8, R9, R15): its installments with due dates, what is paid and what is
//! overdue, whether production is paused; recording the signed contract and a payment.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordertrail_domain::decide::{ContractInput, PaymentInput, record_payment, sign_contract};
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::order::Order;
use ordertrail_domain::payment::{Statement, production_pause};
use serde::Serialize;
use utoipa::ToSchema;

/// The schedule as it stands today in the organisation's time zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsView {
    #[serde(flatten)]
    pub statement: Statement,
    /// Set while production work is refused: "paused: installment N is D days overdue".
    pub paused: Option<String>,
}

fn view(state: &AppState, order: &Order) -> ApiResult<PaymentsView> {
    let schedule = order
        .payments
        .as_ref()
        .ok_or_else(|| ApiError::not_found("payment schedule"))?;
    let today = state.local_date(state.now());
    Ok(PaymentsView {
        statement: schedule.statement(today),
        paused: production_pause(schedule, &state.org.dunning_policy, today).map(|p| p.to_string()),
    })
}

/// The order's payment schedule: installments, due dates, payments, overdue days, the pause.
#[utoipa::path(get, operation_id = "get_payments", path = "/api/v1/orders/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The payment schedule today", body = PaymentsView), CommonProblems))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<PaymentsView>> {
    let order = app::visible_order(&state, &caller, id).await?;
    if !ordertrail_domain::access::FieldVisibility::for_role(caller.role).money {
        return Err(ApiError::from(ordertrail_domain::DomainError::RoleNotAllowed {
            role: caller.role,
            action: "see the order's payments".into(),
        }));
    }
    Ok(Json(view(&state, &order)?))
}

/// Records a payment (finance): against an installment, or the earliest due ones. An overpayment, another
/// currency or a payment to a cancelled order is refused and changes nothing.
#[utoipa::path(post, operation_id = "record_payment", path = "/api/v1/orders/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = PaymentInput,
    responses((status = 201, description = "The payment schedule after the payment", body = PaymentsView),
        (status = 409, description = "The order is cancelled or has no payment schedule", body = crate::error::Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(input): ApiJson<PaymentInput>,
) -> ApiResult<(StatusCode, Json<PaymentsView>)> {
    let order = app::change_order(&state, caller.acting(), id, move |order, ctx| {
        record_payment(order, input.clone(), ctx)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &order)?)))
}

/// Records that the client signed the contract (R15): the deposit falls due that day, and tracking starts once
/// it is paid. A second signature, a date in the future or a cancelled order is refused and changes nothing.
#[utoipa::path(post, operation_id = "sign_contract", path = "/api/v1/orders/{id}/contract", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = ContractInput,
    responses((status = 201, description = "The payment schedule after the signature", body = PaymentsView),
        (status = 409, description = "Already signed, cancelled, or no payment schedule", body = crate::error::Problem, content_type = "application/problem+json"),
        CommonProblems))]
pub async fn contract(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(input): ApiJson<ContractInput>,
) -> ApiResult<(StatusCode, Json<PaymentsView>)> {
    let order = app::change_order(&state, caller.acting(), id, move |order, ctx| {
        sign_contract(order, input.clone(), ctx)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &order)?)))
}
