//! `esegeta serve`'s HTTP API, over HTTP: the token, the roots (each kind of traversal),
//! `/api/check`'s problems by path, the body limit, a run followed by its events to the end
//! with its maps served, a refused concurrent run and a cancel.

#[path = "serve_support.rs"]
mod serve_support;

use std::io::{BufRead, BufReader};

use serde_json::{json, Value};
use serve_support::*;

fn get(server: &Server, path: &str) -> (u16, String) {
    let mut r = agent()
        .get(server.url(path))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let mut r = agent()
        .post(server.url(path))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    )
}

/// Every event of a run until `run_finished`, read from its server-sent events.
fn events(server: &Server, id: &str) -> Vec<Value> {
    let r = agent()
        .get(server.url(&format!("/api/runs/{id}/events")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut out = Vec::new();
    for line in BufReader::new(r.into_body().into_reader()).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data).unwrap();
            let last = event["event"] == "run_finished";
            out.push(event);
            if last {
                break;
            }
        }
    }
    out
}

#[test]
fn every_request_needs_the_token() {
    let server = serve(&demo_root("serve-token"));
    let plain = agent().get(server.url("/api/methods")).call().unwrap();
    assert_eq!(plain.status().as_u16(), 401);
    let page = agent().get(server.url("/")).call().unwrap();
    assert_eq!(page.status().as_u16(), 401, "the page needs the token too");
    let wrong = agent()
        .get(server.url("/api/methods"))
        .header("Authorization", "Bearer nope")
        .call()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (status, body) = get(&server, "/api/methods");
    assert_eq!(status, 200);
    let methods: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(methods
        .iter()
        .any(|m| m["id"] == "captum.integrated_gradients"));
    // ?token= once: the answer sets a cookie, which then suffices.
    let first = agent()
        .get(server.url(&format!("/?token={TOKEN}")))
        .call()
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let cookie = first.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let again = agent()
        .get(server.url("/api/schema/captum.saliency"))
        .header("Cookie", &pair)
        .call()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
}

#[test]
fn paths_outside_the_roots_are_refused() {
    let root = demo_root("serve-roots");
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("demo/host-link")).unwrap();
    let server = serve(&root);
    for path in [
        "/api/files?path=..",
        "/api/files?path=demo/../..",
        "/api/files?path=%2E%2E%2F",
        "/api/files?path=/etc",
        "/api/files?path=etc-link",
        "/api/raw?path=etc-link/hostname",
        "/api/raw?path=demo/host-link",
        "/api/raw?path=/etc/hostname",
        "/api/layers?model=/etc/hostname",
    ] {
        let (status, body) = get(&server, path);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("outside") || body.contains(".."),
            "{path}: {body}"
        );
    }
    // Listing the root hides nothing that is inside, and shows no link that leads out.
    let (status, body) = get(&server, "/api/files?path=.");
    assert_eq!(status, 200);
    assert!(
        body.contains("demo") && !body.contains("etc-link"),
        "{body}"
    );
    let (status, _) = get(&server, "/api/raw?path=demo/scan_with_lesion.png");
    assert_eq!(status, 200);
    // Configs naming paths outside: refused before anything is written or run.
    for (place, config) in [
        ("model.path", json!({"model": {"path": "/etc/hostname"}})),
        ("output.folder", json!({"output": {"folder": "../escaped"}})),
        (
            "inputs[0].path",
            json!({"inputs": [{"path": "etc-link/*.png", "targets": [1]}]}),
        ),
    ] {
        let mut bad = demo_2d(json!(4), "out/x");
        for (k, v) in config.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (status, body) = post(&server, "/api/runs", &bad);
        assert_eq!(status, 403, "{place}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with(place), "{body}");
        let (status, body) = post(&server, "/api/check", &bad);
        assert_eq!(status, 200);
        assert_eq!(body["ok"], false);
        assert_eq!(body["errors"][0]["path"], place, "{body}");
    }
    assert!(!root.join("../escaped").exists());
}

#[test]
fn check_reports_problems_by_path() {
    let server = serve(&demo_root("serve-check"));
    let (status, body) = post(&server, "/api/check", &demo_2d(json!(4), "out/ok"));
    assert_eq!(status, 200);
    assert_eq!(body, json!({"ok": true, "errors": [], "jobs": 2}));
    let mut bad = demo_2d(json!(-1), "out/bad");
    bad["model"]["path"] = json!("demo/missing.pt");
    let (_, body) = post(&server, "/api/check", &bad);
    assert_eq!(body["ok"], false);
    let errors = body["errors"].as_array().unwrap();
    let at = |path: &str| errors.iter().find(|e| e["path"] == path);
    assert!(at("methods[1].params.n_steps").is_some(), "{body}");
    assert!(at("model.path").is_some(), "{body}");
    // A config that does not validate never starts.
    let (status, body) = post(&server, "/api/runs", &demo_2d(json!(-1), "out/bad"));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["path"], "methods[1].params.n_steps");
    let (_, runs) = get(&server, "/api/runs");
    assert_eq!(runs, "[]");
    // Bodies past the limit are refused.
    assert_eq!(declared_huge_body(&server), 413);
    // Not JSON at all.
    let r = agent()
        .post(server.url("/api/check"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn a_run_is_followed_to_its_end_and_serves_its_maps() {
    let root = demo_root("serve-run");
    let server = serve(&root);
    let (status, body) = post(&server, "/api/runs", &demo_2d(json!(4), "out/run"));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let events = events(&server, &id);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"queued"), "{names:?}");
    assert!(
        names.contains(&"planned") && names.contains(&"job_started"),
        "{names:?}"
    );
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "job_finished")
        .collect();
    assert_eq!(finished.len(), 2, "{events:?}");
    assert!(
        finished.iter().all(|e| e["record"]["status"] == "done"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["status"], "finished", "{events:?}");
    let (status, body) = get(&server, &format!("/api/runs/{id}"));
    assert_eq!(status, 200);
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["status"], "finished");
    assert_eq!(run["folder"], "out/run");
    let jobs = run["manifest"]["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        for file in job["files"].as_array().unwrap() {
            let name = file.as_str().unwrap().rsplit("out/run/").next().unwrap();
            let (status, _) = get(&server, &format!("/api/runs/{id}/files/{name}"));
            assert_eq!(status, 200, "{name}");
        }
    }
    let (status, report) = get(&server, &format!("/api/runs/{id}/files/report.html"));
    assert_eq!(status, 200);
    assert!(
        report.contains("<html"),
        "{}",
        &report[..200.min(report.len())]
    );
    for escape in [
        "../../demo/lesion_classifier.pt",
        "%2E%2E/%2E%2E/demo/scan_with_lesion.png",
    ] {
        let (status, _) = get(&server, &format!("/api/runs/{id}/files/{escape}"));
        assert!(status == 403 || status == 404, "{escape}: {status}");
    }
    // A second server over the same root finds the run again from its manifest.
    drop(server);
    let again = serve(&root);
    let (_, body) = get(&again, &format!("/api/runs/{id}"));
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["manifest"]["jobs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_run_can_be_cancelled_and_its_folder_is_not_shared() {
    let server = serve(&demo_root("serve-cancel"));
    // Long enough to be running when the cancel comes: many integration steps, one at a time.
    let mut slow = demo_2d(json!(20000), "out/slow");
    slow["methods"][1]["params"]["internal_batch_size"] = json!(1);
    let (status, body) = post(&server, "/api/runs", &slow);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, body) = post(&server, "/api/runs", &demo_2d(json!(4), "out/slow"));
    assert_eq!(status, 409, "a second run into the same folder: {body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    // Another folder: queued behind the first (one run at a time), and cancelled there.
    let (status, body) = post(&server, "/api/runs", &demo_2d(json!(4), "out/queued"));
    assert_eq!(status, 201, "{body}");
    let queued = body["id"].as_str().unwrap().to_string();
    let (_, body) = get(&server, &format!("/api/runs/{queued}"));
    assert!(body.contains("\"queued\""), "{body}");
    let r = agent()
        .delete(server.url(&format!("/api/runs/{queued}")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let names: Vec<Value> = events(&server, &queued)
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("queued"), json!("run_finished")],
        "never started"
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = agent()
        .delete(server.url(&format!("/api/runs/{id}")))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let events = events(&server, &id);
    assert_eq!(events.last().unwrap()["status"], "cancelled", "{events:?}");
    let (_, body) = get(&server, &format!("/api/runs/{id}"));
    assert!(body.contains("\"cancelled\""), "{body}");
    // The folder is free again.
    let (status, body) = post(&server, "/api/runs", &demo_2d(json!(4), "out/slow"));
    assert_eq!(status, 201, "{body}");
}

/// Declares a 2 MiB body and sends only its start: the server answers from the header alone.
fn declared_huge_body(server: &Server) -> u16 {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/check HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"padding\": \"",
        2 << 20
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(&[b'x'; 4096]);
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}
