//! `Idempotency-Key` on POST: the first successful response is kept and replayed to a retry by the same user
//! with the same key, so a retried request never acts twice. A retry while the first is still running gets
//! 409; the same key with a different request gets 422. Failed requests release the key so a retry can act.

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ordertrail_store::IdempotencyClaim;
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
const MAX_BODY: usize = 1 << 20;

pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    match handle(state, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let key = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1-255 visible ASCII characters"))?
        .to_string();
    let user = authenticate(&state, request.headers()).await?;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            "the request body must be at most 1 MiB",
        )
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path());
    hasher.update([0]);
    // The same body sent in another role is another request.
    hasher.update(
        parts
            .headers
            .get(crate::auth::ROLE_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
    );
    hasher.update([0]);
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());

    match state
        .store
        .claim_idempotency_key(user.id, &key, &fingerprint, state.now())
        .await?
    {
        IdempotencyClaim::Done {
            fingerprint: first,
            status,
            body,
        } => {
            if first != fingerprint {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    "this Idempotency-Key was used for a different request; use a new key",
                ));
            }
            let mut response = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyClaim::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "Request in progress",
            "a request with this Idempotency-Key is still being handled; retry later",
        )),
        IdempotencyClaim::Claimed => {
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            if !response.status().is_success() {
                state.store.release_idempotency_key(user.id, &key).await?;
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = to_bytes(body, usize::MAX)
                .await
                .map_err(|_| ApiError::bad_request("response could not be read"))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            state
                .store
                .finish_idempotency_key(user.id, &key, parts.status.as_u16(), &text)
                .await?;
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
    }
}
