//! Customers and their contacts.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordertrail_domain::customer::{Customer, NewCustomer};
use ordertrail_domain::ids::CustomerId;

/// Records a customer (sales roles and admin).
#[utoipa::path(post, operation_id = "create_customer", path = "/api/v1/customers", tag = "customers", security(("bearer" = [])), request_body = NewCustomer,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    responses((status = 201, description = "The customer, recorded", body = Customer), CommonProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<NewCustomer>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    let customer = app::create_customer(&state, caller.acting(), input).await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

/// One customer. A customer user sees only their own.
#[utoipa::path(get, operation_id = "get_customer", path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The customer", body = Customer), CommonProblems))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<CustomerId>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(app::customer(&state, &caller, id).await?))
}
