//! The GUI in headless Chromium, driven through chromedriver (WebDriver, fantoccini): load the
//! page, pick the demo model and input in the file browser, choose two methods, enter a bad
//! value and see the server's message at its field, fix it, run, watch every job's progress
//! reach the end and the 2D overlay drawn, then a 3D run whose map opens in the niivue viewer.
//! Screenshots of each screen go to target/screenshots/.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! .ci/run installs them). Without them the test says so and passes, unless
//! ESEGETA_REQUIRE_BROWSER is set (CI), where it fails.

#[path = "serve_support.rs"]
mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use serve_support::*;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, and the Chromium it drives.
fn start_driver() -> Option<(Driver, u16, PathBuf)> {
    let driver = find_program(&["chromedriver"]);
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        assert!(
            std::env::var_os("ESEGETA_REQUIRE_BROWSER").is_none(),
            "ESEGETA_REQUIRE_BROWSER is set but chromium or chromedriver is not on PATH \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: the browser test needs chromium and chromedriver on PATH");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((Driver(child), port, chromium))
}

async fn browser(port: u16, chromium: &Path) -> Client {
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--use-angle=swiftshader",
                     "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// Waits until the JavaScript expression is true; fails with `what` after `seconds`.
async fn until(c: &Client, expression: &str, seconds: u64, what: &str) {
    let started = Instant::now();
    loop {
        let script = format!("return !!({expression});");
        if c.execute(&script, vec![]).await.ok() == Some(Value::Bool(true)) {
            return;
        }
        if started.elapsed() > Duration::from_secs(seconds) {
            let state = c
                .execute(
                    "return document.querySelector('#run-status').textContent + ' | ' + \
                     document.querySelector('#check-state').textContent + ' | ' + \
                     [...document.querySelectorAll('.error,.server-error')].map(e => e.textContent).join('; ')",
                    vec![],
                )
                .await
                .unwrap_or_default();
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("{what}: not after {seconds} s ({expression}); the page says {state}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn shot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    if let Ok(png) = c.screenshot().await {
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

async fn click(c: &Client, css: &str) {
    // A Chromium started for the first time on a machine (its profile and font caches) can
    // take longer than 20 s to show the first listing: a fresh CI run once did.
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn select(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.select_by_value(value).await.unwrap();
}

/// Picks a file in the page's file browser, through its folders.
async fn pick(c: &Client, field: &str, folders: &[&str], file: &str) {
    click(c, &format!("button.browse[data-for='{field}']")).await;
    for folder in folders {
        click(c, &format!("#browser-list li[data-path='{folder}']")).await;
    }
    click(c, &format!("#browser-list li[data-path='{file}']")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_builds_checks_runs_and_shows_a_config() {
    let Some((_driver, port, chromium)) = start_driver() else {
        return;
    };
    let server = serve(&demo_root("serve-browser"));
    let c = browser(port, &chromium).await;
    c.goto(&server.url(&format!("/?token={TOKEN}")))
        .await
        .unwrap();
    until(
        &c,
        "document.body.dataset.ready === 'true'",
        30,
        "the page loads",
    )
    .await;

    // Run parameters: the demo classifier and its scan, from the file browser.
    pick(&c, "model-path", &["demo"], "demo/lesion_classifier.pt").await;
    pick(&c, "input-path", &["demo"], "demo/scan_with_lesion.png").await;
    type_into(&c, "#input-targets", "1").await;
    type_into(&c, "#out-folder", "out/browser-2d").await;

    // A second input, its own row: in the config, back from a loaded config, then removed.
    click(&c, "#input-add").await;
    pick(&c, "input-path-1", &["demo"], "demo/scan_with_lesion.png").await;
    type_into(&c, "#input-targets-1", "0,1").await;
    let inputs = "return window.esegeta.currentConfig().inputs";
    let two = json!([
        {"path": "demo/scan_with_lesion.png", "targets": [1]},
        {"path": "demo/scan_with_lesion.png", "targets": [0, 1]}
    ]);
    assert_eq!(c.execute(inputs, vec![]).await.unwrap(), two);
    until(
        &c,
        "document.querySelector('#check-state').dataset.state !== 'pending'",
        60,
        "the check of two inputs",
    )
    .await;
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    shot(&c, "1-run-parameters").await;
    let config = c
        .execute("return window.esegeta.currentConfig()", vec![])
        .await
        .unwrap();
    c.execute(
        "window.esegeta.loadConfig(arguments[0])",
        vec![config.clone()],
    )
    .await
    .unwrap();
    assert_eq!(c.execute(inputs, vec![]).await.unwrap(), two);
    click(&c, "#inputs .config-row[data-index='1'] .row-remove").await;
    // A second model makes the config's `models`, each named; removing it, `model` again.
    click(&c, "#model-add").await;
    pick(&c, "model-path-1", &["demo"], "demo/lesion_classifier.pt").await;
    type_into(&c, "#model-name", "first").await;
    type_into(&c, "#model-name-1", "second").await;
    let models = c
        .execute("return window.esegeta.currentConfig().models", vec![])
        .await
        .unwrap();
    let named = |name: &str| json!({"path": "demo/lesion_classifier.pt", "name": name, "task": "classification"});
    assert_eq!(models, json!([named("first"), named("second")]));
    click(&c, "#models .config-row[data-index='1'] .row-remove").await;
    type_into(&c, "#model-name", "").await;
    let config = c
        .execute("return window.esegeta.currentConfig()", vec![])
        .await
        .unwrap();
    assert_eq!(
        (&config["model"], &config["models"]),
        (
            &json!({"path": "demo/lesion_classifier.pt", "task": "classification"}),
            &Value::Null
        )
    );
    // Per-channel statistics become the one `normalize` key, and survive a round trip.
    type_into(&c, "#pre-mean", "0.5").await;
    type_into(&c, "#pre-std", "0.25").await;
    type_into(&c, "#pre-crop", "60,60").await;
    let preprocessing = "return window.esegeta.currentConfig().preprocessing";
    let stats = json!({"normalize": {"mean": [0.5], "std": [0.25]}, "crop": [60, 60]});
    assert_eq!(c.execute(preprocessing, vec![]).await.unwrap(), stats);
    let config = c
        .execute("return window.esegeta.currentConfig()", vec![])
        .await
        .unwrap();
    c.execute("window.esegeta.loadConfig(arguments[0])", vec![config])
        .await
        .unwrap();
    assert_eq!(c.execute(preprocessing, vec![]).await.unwrap(), stats);
    for field in ["#pre-mean", "#pre-std", "#pre-crop"] {
        type_into(&c, field, "").await;
    }
    assert_eq!(
        c.execute(inputs, vec![]).await.unwrap(),
        json!([{"path": "demo/scan_with_lesion.png", "targets": [1]}])
    );

    // Two methods, found with the search box.
    click(&c, "button[data-screen='methods']").await;
    type_into(&c, "#method-search", "gradient").await;
    click(&c, "input[data-method='captum.integrated_gradients']").await;
    type_into(&c, "#method-search", "saliency").await;
    click(&c, "input[data-method='captum.saliency']").await;
    shot(&c, "2-methods").await;

    // A bad value shows the server's message at its field; the run cannot start.
    click(&c, "button[data-screen='forms']").await;
    let ig = "div.method-form[data-method='captum.integrated_gradients']";
    let n_steps = format!("{ig} [data-schemapath='root.n_steps']");
    click(&c, &format!("{n_steps} input.json-editor-opt-in")).await;
    type_into(&c, &format!("{n_steps} input[name='root[n_steps]']"), "-1").await;
    click(&c, "#screen-forms p.hint").await; // leaves the field: json-editor takes the value on change
    let error = format!("{n_steps} .server-error");
    until(
        &c,
        // The message for -1, not one for the moment the field was still empty.
        &format!("document.querySelector(\"{error}\")?.textContent.includes('minimum')"),
        30,
        "the inline error",
    )
    .await;
    let message = c
        .find(Locator::Css(&error))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(message.contains("minimum of 1"), "{message}");
    assert!(c
        .find(Locator::Css("#run-start"))
        .await
        .unwrap()
        .attr("disabled")
        .await
        .unwrap()
        .is_some());
    shot(&c, "3-method-parameters-invalid").await;

    type_into(&c, &format!("{n_steps} input[name='root[n_steps]']"), "4").await;
    click(&c, "#screen-forms p.hint").await;
    until(
        &c,
        "document.querySelector('#check-state').dataset.state === 'ok'",
        60,
        "the fixed config checks",
    )
    .await;
    assert!(
        c.find(Locator::Css(&error)).await.is_err(),
        "the error went away"
    );
    let config = c
        .execute("return window.esegeta.currentConfig()", vec![])
        .await
        .unwrap();
    assert_eq!(
        config["methods"][0]["params"],
        json!({"n_steps": 4}),
        "{config}"
    );
    assert_eq!(config["model"]["path"], "demo/lesion_classifier.pt");

    // Round trip: the config loaded back into the forms gives the same config.
    c.execute(
        "window.esegeta.loadConfig(arguments[0])",
        vec![config.clone()],
    )
    .await
    .unwrap();
    until(
        &c,
        "document.querySelectorAll('.method-form').length === 2",
        10,
        "the forms again",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = c
        .execute("return window.esegeta.currentConfig()", vec![])
        .await
        .unwrap();
    assert_eq!(again, config, "load then download");
    until(
        &c,
        "document.querySelector('#check-state').dataset.state === 'ok'",
        60,
        "the loaded config checks",
    )
    .await;

    // The example studies (several models, metrics, randomisation) load into the forms and
    // come back unchanged.
    for name in ["demo-vessels.json", "ds6-study.json"] {
        let study = esegeta::config::read(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../configs")
                .join(name),
        )
        .unwrap();
        c.execute(
            "window.esegeta.loadConfig(arguments[0])",
            vec![study.clone()],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = c
            .execute("return window.esegeta.currentConfig()", vec![])
            .await
            .unwrap();
        assert_eq!(again, study, "{name}: load then download");
    }
    // A second, named entry of a method.
    click(&c, "button[data-screen='forms']").await;
    click(
        &c,
        "div.method-form[data-entry='captum.saliency'] button.entry-another",
    )
    .await;
    let names = c
        .execute(
            "return window.esegeta.currentConfig().methods.filter(m => m.id === 'captum.saliency').map(m => m.name || null)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(names, json!([null, "saliency_2"]));

    // A metric of the saliency maps too (as a loaded config brings it): its table shows.
    let mut with_metric = config.clone();
    with_metric["methods"].as_array_mut().unwrap().push(json!({
        "id": "metrics.sparseness", "name": "saliency_sparseness",
        "params": {"explained": {"method": "captum.saliency"}}
    }));
    c.execute("window.esegeta.loadConfig(arguments[0])", vec![with_metric])
        .await
        .unwrap();
    until(
        &c,
        "document.querySelector('#check-state').dataset.state === 'ok'",
        60,
        "the config with a metric checks",
    )
    .await;

    // Run: every job's progress reaches the end, the 2D overlays are drawn.
    click(&c, "button[data-screen='run']").await;
    click(&c, "#run-start").await;
    until(
        &c,
        "document.querySelector('#run-status').dataset.status === 'finished'",
        180,
        "the 2D run ends",
    )
    .await;
    let done = c
        .execute("return [...document.querySelectorAll('#jobs tbody tr')].map(r => [r.querySelector('progress').value, r.querySelector('.job-status').textContent])", vec![])
        .await
        .unwrap();
    assert_eq!(
        done,
        json!([[1, "done"], [1, "done"], [1, "done"]]),
        "{done}"
    );
    until(
        &c,
        "document.querySelectorAll('.overlay2d[data-drawn=true]').length === 2",
        30,
        "the 2D overlays",
    )
    .await;
    let table = ".metric-table[data-metric='metrics.sparseness']";
    until(
        &c,
        &format!("document.querySelectorAll(\"{table} tbody tr\").length === 1"),
        30,
        "the metric's table",
    )
    .await;
    let row = c
        .execute(
            &format!("return [...document.querySelector(\"{table} tbody tr\").cells].map(c => c.textContent)"),
            vec![],
        )
        .await
        .unwrap();
    let cells = row.as_array().unwrap();
    assert_eq!(cells[0], "captum.saliency", "{row}");
    let gini: f64 = cells[1].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&gini), "{row}");
    shot(&c, "4-results-2d").await;

    // A 3D run: the vessel UNet on the angiogram, its saliency opened over the scan.
    click(&c, "button[data-screen='params']").await;
    pick(&c, "model-path", &["vessels"], "vessels/unet.onnx").await;
    select(&c, "#model-task", "segmentation").await;
    select(&c, "#model-wrapper", "threshold").await;
    pick(&c, "input-path", &["vessels"], "vessels/vessels_00.nii.gz").await;
    select(&c, "#pre-normalize", "minmax").await;
    click(&c, "#out-formats input[value='nii.gz']").await;
    click(&c, "#out-formats input[value='png']").await;
    type_into(&c, "#out-folder", "out/browser-3d").await;
    click(&c, "button[data-screen='methods']").await;
    type_into(&c, "#method-search", "integrated").await;
    click(&c, "input[data-method='captum.integrated_gradients']").await;
    click(&c, "button[data-screen='run']").await;
    until(
        &c,
        "document.querySelector('#check-state').dataset.state === 'ok'",
        120,
        "the 3D config checks",
    )
    .await;
    click(&c, "#run-start").await;
    until(
        &c,
        "document.querySelector('#run-status').dataset.status === 'finished'",
        300,
        "the 3D run ends",
    )
    .await;
    click(&c, "button.view3d").await;
    until(
        &c,
        "document.querySelector('[data-volume=loaded]')",
        60,
        "the 3D viewer loads the scan and the map",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shot(&c, "5-results-3d").await;
    c.close().await.unwrap();
}
