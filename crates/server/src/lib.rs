//! Ordertrail's HTTP layer: the JSON REST API under `/api/v1`, its OpenAPI 3.1 document (generated from the
//! handlers, so it cannot drift), authentication and the problem+json error mapping. Thin: handlers parse,
//! call a use case in [`app`], and render.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod routes;
pub mod scheduler;
pub mod state;
pub mod views;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use error::ApiError;
use state::AppState;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ordertrail API", description = "Orders, workflows, milestones, follow-ups and their audit log. Errors are application/problem+json (RFC 9457). Authenticate with `Authorization: Bearer <token>`; pick the acting role with `X-Ordertrail-Role` when you hold several."),
    modifiers(&BearerAuth),
    tags((name = "orders"), (name = "milestones"), (name = "follow-ups"), (name = "issues"), (name = "change-orders"), (name = "payments"), (name = "outbox"), (name = "customers"), (name = "workflows"), (name = "system"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and the OpenAPI document describing them.
fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::me))
        .routes(routes!(system::workflows))
        .routes(routes!(customers::create))
        .routes(routes!(customers::get))
        .routes(routes!(orders::create, orders::list))
        .routes(routes!(orders::get))
        .routes(routes!(orders::transition))
        .routes(routes!(orders::events))
        .routes(routes!(milestones::list))
        .routes(routes!(milestones::change))
        .routes(routes!(milestones::complete))
        .routes(routes!(follow_ups::create, follow_ups::list))
        .routes(routes!(issues::open, issues::list_for_order))
        .routes(routes!(issues::list))
        .routes(routes!(issues::change_impact))
        .routes(routes!(issues::set_severity))
        .routes(routes!(issues::propose_options))
        .routes(routes!(issues::client_told))
        .routes(routes!(issues::client_decision))
        .routes(routes!(issues::resolve))
        .routes(routes!(change_orders::draft, change_orders::list))
        .routes(routes!(change_orders::estimate_cost))
        .routes(routes!(change_orders::estimate_timeline))
        .routes(routes!(change_orders::approve_internally))
        .routes(routes!(change_orders::send_to_client))
        .routes(routes!(change_orders::client_response))
        .routes(routes!(change_orders::withdraw))
        .routes(routes!(payments::get, payments::record))
        .routes(routes!(payments::contract))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::retry))
        .routes(routes!(outbox::send))
        .routes(routes!(invoices::get))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole HTTP application.
pub fn router(state: AppState) -> axum::Router {
    let (api, doc) = api();
    let doc = std::sync::Arc::new(doc);
    api.route(
        "/api/v1/openapi.json",
        axum::routing::get(move || async move { Json(doc.as_ref().clone()) }),
    )
    .fallback(|| async { ApiError::not_found("route") })
    .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer))
    .layer(DefaultBodyLimit::max(1 << 20))
    .layer(axum::middleware::map_response(problem_for_bare_errors))
    .layer(TraceLayer::new_for_http())
    .with_state(state)
}

/// Turns axum's own plain-text refusals (405) into problem+json, like every other error.
async fn problem_for_bare_errors(response: axum::response::Response) -> axum::response::Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept that method",
        )
        .into_response();
    }
    response
}
