//! Who is calling: a bearer token (only its SHA-256 is stored) names a user; the `X-Ordertrail-Role` header
//! picks the role they act in when they hold several (R18).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ordertrail_domain::Role;
use ordertrail_domain::customer::{RoleChoiceError, User};
use ordertrail_domain::decide::Acting;
use ordertrail_domain::event::Actor;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const ROLE_HEADER: &str = "x-ordertrail-role";

/// A new API token: `ot_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ot_{}", hex::encode(bytes))
}

/// What is stored for a token. A fast hash is right here: the token is 256 random bits, not a password.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The signed-in user, from the Authorization header.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    let value = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("send a token: Authorization: Bearer <token> (see `ordertrail token issue`)")
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be: Bearer <token>"))?;
    let hash = hash_token(token);
    if let Some(user) = state.tokens.get(&hash) {
        return Ok(user);
    }
    let user = state
        .store
        .user_by_token_hash(&hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is not valid"))?;
    state.tokens.put(hash, user.clone());
    Ok(user)
}

/// The caller of a request: the user and the role they act in.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub role: Role,
}

impl Caller {
    pub fn acting(&self) -> Acting {
        Acting {
            user: self.user.id,
            role: self.role,
        }
    }
    pub fn actor(&self) -> Actor {
        Actor::User {
            id: self.user.id,
            role: self.role,
        }
    }
    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.role.is_staff() {
            Ok(())
        } else {
            Err(ApiError::forbidden("customers cannot do this"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = authenticate(state, &parts.headers).await?;
        let asked = match parts.headers.get(ROLE_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::bad_request("X-Ordertrail-Role must be a role name"))?,
            ),
        };
        let role = user.acting_role(asked).map_err(|e| match e {
            RoleChoiceError::NotHeld(_) => ApiError::forbidden(e.to_string()),
            RoleChoiceError::Unknown(_) | RoleChoiceError::Ambiguous(_) => ApiError::bad_request(e.to_string()),
        })?;
        Ok(Caller { user, role })
    }
}
