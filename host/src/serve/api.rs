//! The read-only API and the check: methods, schemas, the roots' files, a model's layers,
//! `POST /api/check`, and a root's file as is (`/api/raw`, for the page's viewers).

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::check::{check_file, outside_roots, scratch_file};
use super::error::{ApiError, ApiResult};
use super::state::AppState;

/// `GET /api/methods`: as `esegeta methods --json`.
pub async fn methods(State(state): State<AppState>) -> Json<Value> {
    Json(Value::Array(crate::cli::methods_json(&state.registry)))
}

/// `GET /api/schema/{id}`: a method's parameter schema, or `run-config`'s.
pub async fn schema(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    if id == "run-config" {
        return crate::config::schema_with_methods(&state.registry)
            .map(Json)
            .map_err(ApiError::internal);
    }
    let method = state
        .registry
        .method(&id)
        .map_err(|e| ApiError::not_found(format!("{e:#}")))?;
    serde_json::from_str(method.info.params_schema.as_str())
        .map(Json)
        .map_err(|e| ApiError::internal(e.into()))
}

/// `GET /api/files?path=`: a folder's entries (folders first), or without a path, the roots.
pub async fn files(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let roots = &state.roots;
    let Some(path) = q.get("path").filter(|p| !p.is_empty()) else {
        let list: Vec<Value> = roots
            .dirs()
            .iter()
            .map(|d| json!({"name": roots.display(d), "path": roots.display(d), "dir": true}))
            .collect();
        return Ok(Json(json!({"path": "", "entries": list})));
    };
    let real = roots.resolve(path)?;
    let read = std::fs::read_dir(&real)
        .map_err(|e| ApiError::not_found(format!("cannot list {path}: {e}")))?;
    let mut entries: Vec<(bool, String, Value)> = Vec::new();
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        // Links are followed only where they stay inside the roots.
        let Ok(target) = roots.resolve(&roots.display(&entry.path())) else {
            continue;
        };
        let dir = target.is_dir();
        let size = if dir {
            0
        } else {
            target.metadata().map_or(0, |m| m.len())
        };
        let shown = roots.display(&real.join(&name));
        entries.push((
            !dir,
            name.clone(),
            json!({"name": name, "path": shown, "dir": dir, "size": size}),
        ));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(Json(json!({
        "path": roots.display(&real),
        "entries": entries.into_iter().map(|e| e.2).collect::<Vec<_>>(),
    })))
}

/// `GET /api/raw?path=`: a file under the roots, as is (the scan under a 3D map).
pub async fn raw(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let path = q
        .get("path")
        .ok_or_else(|| ApiError::bad_request("give ?path="))?;
    let real = state.roots.resolve(path)?;
    file_response(&real)
}

/// A file's bytes with its content type.
pub fn file_response(real: &std::path::Path) -> ApiResult<Response> {
    let bytes = std::fs::read(real)
        .map_err(|e| ApiError::not_found(format!("cannot read {}: {e}", real.display())))?;
    let mime = mime_guess::from_path(real).first_or_octet_stream();
    Ok(([(header::CONTENT_TYPE, mime.as_ref().to_string())], bytes).into_response())
}

/// `GET /api/layers?model=&input=&output_index=` (or `&output=NAME`): a graph model's layers.
pub async fn layers(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let model = q
        .get("model")
        .ok_or_else(|| ApiError::bad_request("give ?model="))?;
    let model = state.roots.resolve(model)?;
    let input = match q.get("input").filter(|i| !i.is_empty()) {
        Some(i) => Some(state.roots.resolve(i)?),
        None => None,
    };
    let output = crate::model::Output::of(
        q.get("output")
            .map(String::as_str)
            .filter(|o| !o.is_empty()),
        q.get("output_index").and_then(|i| i.parse().ok()),
    );
    let rows = tokio::task::spawn_blocking(move || {
        crate::layers::rows(&model, input.as_deref(), &output, tch::Device::Cpu)
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))?
    .map_err(ApiError::internal)?;
    Ok(Json(json!({"layers": rows})))
}

/// `POST /api/check`: `{"ok": bool, "errors": [{"path", "message"}]}`, as `esegeta check`.
pub async fn check(
    State(state): State<AppState>,
    Json(config): Json<Value>,
) -> ApiResult<Json<Value>> {
    let outside = outside_roots(&config, &state.roots);
    if !outside.is_empty() {
        return Ok(Json(json!({"ok": false, "errors": outside})));
    }
    let file = scratch_file(&state.roots);
    let registry = state.registry.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let result = check_file(&config, &file, &registry);
        let _ = std::fs::remove_file(&file);
        result.map(|r| r.map(|loaded| planned_jobs(&loaded, &registry)))
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))?
    .map_err(ApiError::internal)?;
    Ok(Json(match checked {
        Ok(jobs) => json!({"ok": true, "errors": [], "jobs": jobs}),
        Err(errors) => json!({"ok": false, "errors": errors}),
    }))
}

/// How many jobs a checked config plans.
pub fn planned_jobs(loaded: &crate::config::Loaded, registry: &crate::plugins::Registry) -> usize {
    let randomised = crate::run::plan::randomised_methods(loaded, registry);
    crate::run::plan::plan(loaded, &randomised).map_or(0, |j| j.len())
}
