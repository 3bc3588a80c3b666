//! Health, who-am-I and the loaded workflows.

use super::CommonProblems;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use ordertrail_domain::Role;
use ordertrail_domain::customer::User;
use ordertrail_domain::workflow::Workflow;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct HealthReport {
    pub status: &'static str,
    pub database: &'static str,
    pub version: &'static str,
}

/// Whether the server and its database answer. 503 with the reason when the database does not.
#[utoipa::path(get, operation_id = "health", path = "/api/v1/health", tag = "system",
    responses((status = 200, description = "Server and database answer", body = HealthReport), (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json")))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<HealthReport>> {
    state.store.ping().await.map_err(ApiError::from)?;
    Ok(Json(HealthReport {
        status: "ok",
        database: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    /// The role this request acts in.
    pub acting_role: Role,
}

/// The caller and the role they act in.
#[utoipa::path(get, operation_id = "me", path = "/api/v1/me", tag = "system", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me), CommonProblems))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        acting_role: caller.role,
        user: caller.user,
    })
}

/// The workflows the organisation runs, as loaded and checked at start-up.
#[utoipa::path(get, operation_id = "list_workflows", path = "/api/v1/workflows", tag = "workflows", security(("bearer" = [])),
    responses((status = 200, description = "The workflows", body = Vec<Workflow>), CommonProblems))]
pub async fn workflows(State(state): State<AppState>, _caller: Caller) -> Json<Vec<Workflow>> {
    Json(state.org.workflows.all().cloned().collect())
}
