//! The token every request must carry, as Jupyter does: `?token=` once (the answer then sets
//! a cookie), the cookie, or `Authorization: Bearer TOKEN`. Without it: 401.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::AppState;

const COOKIE: &str = "esegeta_token";

/// A fresh random token (128 bits, hex).
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lets the request through when it carries the token; sets the cookie when it came in the
/// query string.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let token = state.token.as_str();
    let from_query = query_token(&request).is_some_and(|t| same(&t, token));
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), token));
    let from_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
        .any(|t| same(&t, token));
    if !(from_query || from_header || from_cookie) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                serde_json::json!({"error": "this server needs its token: open the URL \
                `esegeta serve` printed (with ?token=...), or send `Authorization: Bearer TOKEN`"}),
            ),
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if from_query {
        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn query_token(request: &Request) -> Option<String> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
