//! An installment's invoice as a printable HTML page (R8). Rendered with minijinja, which escapes everything
//! it puts into HTML; the template is embedded in the binary.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Html;
use ordertrail_domain::access::FieldVisibility;
use ordertrail_domain::ids::OrderId;
use serde_json::json;

const TEMPLATE: &str = include_str!("../../templates/invoice.html");

/// The invoice of installment `number`, once it has been invoiced (the scheduler invoices before the due date).
#[utoipa::path(get, operation_id = "get_invoice", path = "/api/v1/orders/{id}/invoices/{number}", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("number" = u32, Path, description = "The installment's number")),
    responses((status = 200, description = "The invoice, printable", content_type = "text/html", body = String), CommonProblems))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, number)): ApiPath<(OrderId, u32)>,
) -> ApiResult<Html<String>> {
    let order = app::visible_order(&state, &caller, id).await?;
    if !FieldVisibility::for_role(caller.role).money {
        return Err(ApiError::forbidden(format!(
            "the role {} may not see the order's money",
            caller.role
        )));
    }
    render(&state, &order, number)?
        .map(Html)
        .ok_or_else(|| ApiError::not_found("invoice"))
}

/// The invoice of installment `number` as HTML; none until it is invoiced. Also attached to the invoice email.
pub fn render(state: &AppState, order: &ordertrail_domain::order::Order, number: u32) -> ApiResult<Option<String>> {
    let installment = order
        .payments
        .as_ref()
        .and_then(|s| s.installment(number))
        .ok_or_else(|| ApiError::not_found("installment"))?;
    let Some(invoice) = installment.invoice.as_ref() else {
        return Ok(None);
    };
    let mut env = minijinja::Environment::new();
    env.add_template("invoice.html", TEMPLATE)
        .map_err(|e| ApiError::internal(format!("the invoice template: {e}")))?;
    let page = env
        .get_template("invoice.html")
        .and_then(|t| {
            t.render(minijinja::Value::from(minijinja::value::Serde(json!({
                "organisation": state.org.name,
                "order": order,
                "installment": installment,
                "invoice": invoice,
                "paid": installment.paid().amount_string(),
                "outstanding": installment.outstanding().amount_string(),
            }))))
        })
        .map_err(|e| ApiError::internal(format!("rendering the invoice: {e}")))?;
    Ok(Some(page))
}
