//! The REST API's handlers, one module per resource. Each parses, calls a use case in [`crate::app`], and
//! renders; the OpenAPI document is generated from their annotations.

pub mod change_orders;
pub mod customers;
pub mod follow_ups;
pub mod invoices;
pub mod issues;
pub mod milestones;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod system;

use crate::error::Problem;

/// The problem responses every authenticated route may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum CommonProblems {
    #[response(
        status = 400,
        description = "Malformed request (bad JSON syntax, bad query, ambiguous role)",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "Missing or invalid bearer token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The acting role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "No such resource, or not visible to the caller",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 413,
        description = "Body over 1 MiB",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Body is not JSON",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    #[response(
        status = 422,
        description = "Invalid input (per-field errors) or a failed guard (per-guard details)",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    #[response(
        status = 503,
        description = "Database unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}
