//! The operator commands use the worker's own engines: `fuze-worker embed` matches the reference
//! embeddings, `fuze-worker extract` matches what the scraper stores.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use serde_json::Value;

fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("fuze-worker");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

fn run(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(worker_binary())
        .args(args)
        .env("FUZE_MODEL_DIR", fuze_tests::env::model_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fuze-worker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixtures() -> Vec<Value> {
    let dir = std::env::var("FUZE_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
        });
    let path = dir.join("minilm_reference.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture row"))
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("float"))
        .collect()
}

#[test]
fn embed_command_matches_the_reference_embeddings() {
    // A short, a unicode and a long (truncated) row keep this quick while covering the paths.
    let rows: Vec<Value> = fixtures()
        .into_iter()
        .filter(|r| [0, 11, 46].contains(&r["id"].as_i64().expect("id")))
        .collect();
    assert_eq!(rows.len(), 3, "fixture rows 0, 11 and 46 exist");
    let input: String = rows
        .iter()
        .map(|r| format!("{}\n", serde_json::json!({ "text": r["text"] })))
        .collect();
    let (ok, stdout, stderr) = run(&["embed"], &input);
    assert!(ok, "embed failed: {stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), rows.len(), "one output line per input line");
    for (row, line) in rows.iter().zip(&lines) {
        let ours = floats(&line["embedding"]);
        assert_eq!(ours.len(), 384);
        let cos = cosine(&ours, &floats(&row["embedding"]));
        assert!(cos >= 0.9999, "row {}: cosine {cos}", row["id"]);
    }
}

#[test]
fn embed_command_rejects_bad_lines_clearly() {
    let (ok, _, stderr) = run(&["embed"], "{\"txt\": \"typo\"}\n");
    assert!(!ok);
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn extract_command_prints_what_the_scraper_stores() {
    let page = fuze_tests::pages::article("Extract me");
    let (ok, stdout, stderr) = run(&["extract", "--url", "https://example.com/a/b"], &page);
    assert!(ok, "extract failed: {stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(out["title"], "Extract me");
    assert_eq!(out["description"], "About Extract me");
    assert_eq!(
        out["canonical_url"],
        "https://example.com/canonical/Extract%20me"
    );
    let text = out["text"].as_str().expect("text");
    assert!(
        text.contains("work-stealing schedulers") && !text.contains("Copyright"),
        "{text}"
    );
}

/// A program of the workspace, run with only `vars` in its environment.
fn program(name: &str, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(fuze_tests::worker::binary(name))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run the program");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_program_lists_its_subcommands_and_settings() {
    for (name, subcommands) in [
        ("fuze-api", &["serve", "migrate", "create-user"][..]),
        ("fuze-worker", &["run", "embed", "extract"][..]),
        ("fuze-clock", &["run"][..]),
    ] {
        let (code, out, _) = program(name, &["--help"], &[]);
        assert_eq!(code, 0, "{name} --help");
        for sub in subcommands {
            assert!(out.contains(sub), "{name} --help lacks {sub}:\n{out}");
        }
        for setting in [
            "DATABASE_URL",
            "REDIS_URL",
            "FUZE_MODEL_DIR",
            "FUZE_EVENTS_HEARTBEAT_MS",
        ] {
            assert!(
                out.contains(setting),
                "{name} --help lacks {setting}:\n{out}"
            );
        }
    }
}

#[test]
fn a_mistyped_subcommand_says_what_was_expected() {
    let (code, _, err) = program("fuze-api", &["serv"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand 'serv'"), "{err}");
    assert!(err.contains("'serve'"), "suggests the right one: {err}");
    let (code, _, err) = program("fuze-clock", &["start"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand 'start'"), "{err}");
}

#[test]
fn errors_are_one_line_unless_a_backtrace_is_asked_for() {
    let bad = [("FUZE_API_PORT", "eighty")];
    let (code, out, err) = program("fuze-api", &["migrate"], &bad);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("fuze-api: error: ") && lines[0].contains("FUZE_API_PORT"),
        "{err}"
    );
    let (code, _, err) = program("fuze-api", &["migrate"], &[bad[0], ("RUST_BACKTRACE", "1")]);
    assert_eq!(code, 1);
    assert!(err.lines().count() > 1, "details when asked for: {err}");
}
