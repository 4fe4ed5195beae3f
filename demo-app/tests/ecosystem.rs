//! The demo as the ecosystem sees it, judged by tools that share no code with it
//! (tests/ecosystem/check.py): `/openapi.json` is a valid OpenAPI 3.2 document whose
//! `itemSchema` every live event matches (openapi-spec-validator, jsonschema, Schemathesis), and
//! `/metrics` parses with the Prometheus client's own parsers.
//!
//! The tools live in a Python venv, `target/ci-venv`, that `.ci/install-test-tools` makes.
//! Without it the test prints `skipped: ...`; under `CI=true` it fails.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use common::{test_dir, Demo};
use testkit::free_port;

/// The Python of the venv with the tools, if it is there and has them.
fn tools_python() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let workspace_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let python = exe
        .ancestors()
        .chain(std::iter::once(workspace_target.as_path()))
        .map(|dir| dir.join("ci-venv/bin/python"))
        .find(|python| python.is_file())?;
    let imports = Command::new(&python)
        .args([
            "-c",
            "import openapi_spec_validator, jsonschema, prometheus_client, schemathesis",
        ])
        .output()
        .ok()?;
    imports.status.success().then_some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_live_events_and_metrics_pass_independent_tools() {
    let Some(python) = tools_python() else {
        let why =
            "no Python venv with the OpenAPI and Prometheus tools (run .ci/install-test-tools)";
        assert!(!testkit::in_ci(), "CI must run this test: {why}");
        println!("skipped: {why}");
        return;
    };
    let dir = test_dir("ecosystem");
    // Streams end after 2 s, so that the tools can read each to its end.
    let demo = Demo::start(
        &dir,
        free_port(),
        &["--plain", "--max-stream-lifetime", "2s"],
    )
    .await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ecosystem/check.py");
    let base = demo.url("");
    let started = Instant::now();
    let workdir = dir.clone(); // Schemathesis keeps a cache in the working directory
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .current_dir(workdir)
            .output()
            .unwrap_or_else(|e| panic!("running check.py: {e}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}(in {:?})", started.elapsed());
    assert!(
        output.status.success(),
        "check.py failed:\n{stdout}\n{}\ndemo log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        demo.log()
    );
    for check in [
        "openapi-spec-validator",
        "live events",
        "/metrics",
        "schemathesis",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok: ") && l.contains(check)),
            "{check} did not run:\n{stdout}"
        );
    }
}
