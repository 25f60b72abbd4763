//! The page: web/'s build output, embedded in the binary at compile time (build.rs runs
//! `npm ci` and `npm run build` into `$OUT_DIR/web`), so the server works offline.

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "$OUT_DIR/web"]
#[allow_missing = true]
struct Assets;

/// `/` and every file of the page.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [(header::CONTENT_TYPE, mime.as_ref().to_string())],
                file.data,
            )
                .into_response()
        }
        None if path == "index.html" => Html(NOT_BUILT).into_response(),
        None => (StatusCode::NOT_FOUND, "no such file in the page").into_response(),
    }
}

const NOT_BUILT: &str = "<!doctype html><title>esegeta</title><p>This esegeta was built \
    without its page (npm was not found when it was compiled). Install Node.js and npm, then \
    run <code>cargo build --release</code> again; the API under <code>/api/</code> works \
    without it.</p>";
