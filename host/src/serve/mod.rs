//! `esegeta serve`: the web GUI. An HTTP server (axum) bound to 127.0.0.1 unless told
//! otherwise, guarded by a random token, that reads and writes only under its roots, serves
//! the page embedded in the binary, and runs configs on the same engine as `esegeta run`.

mod api;
mod assets;
mod auth;
mod check;
mod error;
mod launch;
pub mod roots;
mod runs;
mod runs_api;
mod state;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::plugins::Registry;
use state::AppState;

/// The largest request body (a run config): 1 MiB. Larger ones get 413.
pub const BODY_LIMIT: usize = 1 << 20;

/// What `esegeta serve` was asked for.
pub struct Options {
    pub host: String,
    pub port: u16,
    pub roots: Vec<PathBuf>,
    pub plugin_dirs: Vec<PathBuf>,
    /// Use this token instead of a random one (tests).
    pub token: Option<String>,
}

/// Serves until the process is stopped.
pub fn serve(registry: Registry, options: Options) -> Result<()> {
    ignore_closed_pipes();
    let roots = roots::Roots::new(&options.roots)?;
    let state = AppState {
        token: Arc::new(options.token.clone().unwrap_or_else(auth::new_token)),
        runs: Arc::new(runs::Runs::recover(&roots)),
        roots: Arc::new(roots),
        registry: Arc::new(registry),
        plugin_dirs: Arc::new(options.plugin_dirs.clone()),
        exe: std::env::current_exe()
            .context("cannot find the esegeta binary to run configs with")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let address = format!("{}:{}", options.host, options.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        // Written once, errors ignored: a server whose terminal went away keeps serving.
        use std::io::Write;
        let roots: Vec<String> = state
            .roots
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let _ = writeln!(
            std::io::stdout(),
            "esegeta serve: open http://{bound}/?token={}\nserving the folders {}",
            state.token,
            roots.join(", ")
        );
        let _ = std::io::stdout().flush();
        axum::serve(listener, router(state)).await?;
        Ok(())
    })
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/methods", get(api::methods))
        .route("/api/schema/{id}", get(api::schema))
        .route("/api/files", get(api::files))
        .route("/api/raw", get(api::raw))
        .route("/api/layers", get(api::layers))
        .route("/api/check", axum::routing::post(api::check))
        .route("/api/runs", get(runs_api::list).post(runs_api::start))
        .route(
            "/api/runs/{id}",
            get(runs_api::describe).delete(runs_api::cancel),
        )
        .route("/api/runs/{id}/events", get(runs_api::events))
        .route("/api/runs/{id}/files/{*path}", get(runs_api::file));
    api.fallback(assets::serve)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Refuses a declared length over the limit from the header alone, unread.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// The CLI restores SIGPIPE's default (end the process) for commands piped into `head`; a
/// server must outlive the terminal or pipe that started it.
fn ignore_closed_pipes() {
    #[cfg(unix)]
    // SAFETY: sets one signal's disposition, before the server's threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
