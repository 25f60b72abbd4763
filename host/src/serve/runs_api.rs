//! The run endpoints: start (`POST /api/runs`), list, describe, follow (server-sent events),
//! cancel (`DELETE`), and the run folder's files.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::check::{check_file, outside_roots};
use super::error::{ApiError, ApiResult};
use super::runs::{new_id, Run, RunStatus, CONFIG_PREFIX};
use super::state::AppState;

/// `POST /api/runs`: checks the config (a config that does not validate never starts), then
/// queues it. 403 for paths outside the roots, 422 with the problems, 409 when another run
/// writes to the same folder.
pub async fn start(
    State(state): State<AppState>,
    Json(config): Json<Value>,
) -> ApiResult<Response> {
    if let Some(outside) = outside_roots(&config, &state.roots).into_iter().next() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{}: {}", outside.path, outside.message),
        ));
    }
    let id = new_id();
    let file = state.roots.base().join(format!("{CONFIG_PREFIX}{id}.json"));
    let registry = state.registry.clone();
    let checked_file = file.clone();
    let checked = tokio::task::spawn_blocking(move || {
        check_file(&config, &checked_file, &registry)
            .map(|r| r.map(|loaded| loaded.output_folder()))
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))?
    .map_err(ApiError::internal)?;
    let folder = match checked {
        Ok(folder) => folder,
        Err(errors) => {
            let _ = std::fs::remove_file(&file);
            let body = json!({"ok": false, "errors": errors});
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
    };
    let refuse = |message: String| {
        let _ = std::fs::remove_file(&file);
        ApiError::new(StatusCode::CONFLICT, message)
    };
    let folder = state
        .roots
        .resolve(&folder.display().to_string())
        .map_err(|e| refuse(e.0))?;
    if held_by_live_process(&folder.join("results.json.lock")) {
        return Err(refuse(format!(
            "another esegeta run is writing to {} now; wait for it, or give this run another \
             output folder",
            state.roots.display(&folder)
        )));
    }
    let run = Arc::new(Run::new(
        id.clone(),
        file.clone(),
        folder,
        RunStatus::Queued,
    ));
    if let Err(busy) = state.runs.insert_unless_busy(run.clone()) {
        return Err(refuse(format!(
            "run {busy} writes to {} and has not ended; wait for it, cancel it, or give this run \
             another output folder",
            state.roots.display(&run.folder)
        )));
    }
    run.emit(json!({"event": "queued", "id": id}));
    super::launch::spawn(state.clone(), run);
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

/// `GET /api/runs`: every known run, newest first.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let mut runs: Vec<Value> = state
        .runs
        .all()
        .iter()
        .map(|r| {
            let p = r.lock();
            json!({"id": r.id, "status": p.status, "folder": state.roots.display(&r.folder)})
        })
        .collect();
    runs.reverse();
    Json(Value::Array(runs))
}

fn find(state: &AppState, id: &str) -> ApiResult<Arc<Run>> {
    state
        .runs
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("there is no run {id}")))
}

/// `GET /api/runs/{id}`.
pub async fn describe(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(find(&state, &id)?.describe(&state.roots)))
}

/// `DELETE /api/runs/{id}`: cancels it (a run that has ended stays as it is).
pub async fn cancel(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let run = find(&state, &id)?;
    let status = run.lock().status;
    if !status.ended() {
        super::launch::cancel(&run);
    }
    Ok(Json(json!({"id": id, "cancelling": !status.ended()})))
}

/// `GET /api/runs/{id}/events`: every event so far, then the new ones as they come, until
/// `run_finished`. Each SSE message's `event:` is the event's name, its data the JSON.
pub async fn events(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = find(&state, &id)?;
    let (past, receiver) = {
        let progress = run.lock();
        (progress.events.clone(), run.sender.subscribe())
    };
    let ended = past.iter().any(|e| e["event"] == "run_finished");
    let replay = stream::iter(past.into_iter().map(|e| Ok(sse(&e))));
    let live = stream::unfold((receiver, ended), |(mut receiver, done)| async move {
        if done {
            return None;
        }
        loop {
            match receiver.recv().await {
                Ok(e) => {
                    let last = e["event"] == "run_finished";
                    return Some((Ok(sse(&e)), (receiver, last)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::default()))
}

fn sse(event: &Value) -> Event {
    Event::default()
        .event(event["event"].as_str().unwrap_or("message"))
        .data(event.to_string())
}

/// `GET /api/runs/{id}/files/{*path}`: a file of the run's folder (maps, report.html).
pub async fn file(
    State(state): State<AppState>,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let run = find(&state, &id)?;
    let inside = run.folder.join(&path);
    let real = state.roots.resolve(&inside.display().to_string())?;
    if !real.starts_with(&run.folder) || std::path::Path::new(&path).is_absolute() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{path} is not inside the run's folder"),
        ));
    }
    super::api::file_response(&real)
}

/// Whether a run lock exists and its process (on this host) still runs.
fn held_by_live_process(lock: &std::path::Path) -> bool {
    let Ok(holder) = std::fs::read_to_string(lock) else {
        return false;
    };
    match holder
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    {
        Some(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}
