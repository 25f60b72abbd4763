//! The API's errors: an HTTP status with a sentence, sent as `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::roots::Outside;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Something on the server's side failed (an unreadable model, a file system error).
    pub fn internal(e: anyhow::Error) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"))
    }
}

impl From<Outside> for ApiError {
    fn from(e: Outside) -> Self {
        Self::new(StatusCode::FORBIDDEN, e.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
