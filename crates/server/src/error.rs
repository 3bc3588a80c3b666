//! Every error the API returns, mapped to HTTP in this one place, as `application/problem+json` (RFC 9457)
//! with a stable `type`, a human `detail`, and per-field or per-guard details where they apply.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordertrail_domain::DomainError;
use ordertrail_domain::error::{FieldError, GuardFailure};
use ordertrail_store::{StoreError, WriteError};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem detail (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `https://ordertrail.dev/problems/guard-failed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Fields that are wrong, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Guards that failed, for a refused transition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardFailure>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    guards: Vec<GuardFailure>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: vec![],
            guards: vec![],
        }
    }
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Not signed in", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }
    /// A fault of ours (a broken embedded template): 500, logged.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        tracing::error!(%detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no such {what}"),
        )
    }
    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            errors,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid input", detail)
        }
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        let detail = e.to_string();
        match e {
            DomainError::Invalid(errors) => ApiError::invalid(errors),
            DomainError::RoleNotAllowed { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "role-not-allowed", "Role not allowed", detail)
            }
            DomainError::TransitionNotAllowed { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "transition-not-allowed",
                "Transition not allowed from the current status",
                detail,
            ),
            DomainError::UnknownStatus { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-status",
                "Unknown status",
                detail,
            ),
            DomainError::GuardsFailed(guards) => ApiError {
                guards,
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "guard-failed",
                    "A guard of the workflow is not satisfied",
                    detail,
                )
            },
            DomainError::StaleVersion { .. } => {
                ApiError::new(StatusCode::CONFLICT, "stale-version", "The order has changed", detail)
            }
            DomainError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            DomainError::Paused(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "paused",
                "Production is paused until an overdue installment is paid",
                detail,
            ),
            DomainError::NotFound { what } => ApiError::not_found(&what),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            StoreError::Unavailable(detail) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database unavailable",
                detail,
            ),
            StoreError::Database(sqlx_error) if is_busy(&sqlx_error) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database busy",
                "the database is busy; retry shortly",
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the server could not complete the request; nothing was changed",
                )
            }
        }
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Domain(d) => d.into(),
            WriteError::Store(s) => s.into(),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("https://ordertrail.dev/problems/{}", self.slug),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            guards: self.guards,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}
