//! The operator files in `dashboards/` are valid: promtool accepts the scrape config and the alert
//! rules, and the Grafana dashboard imports anywhere (datasource input, variables, every row).

use std::collections::HashSet;

use fuze_tests::{
    dashboard::{alert_names, dashboard, panels},
    prometheus::{dashboards_dir, tool},
};

fn promtool(args: &[&str]) -> (bool, String) {
    let out = tool("promtool")
        .args(args)
        .current_dir(dashboards_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_accepts_the_scrape_config_and_its_rules() {
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok, "promtool check config failed:\n{out}");
    // The config loads the alert rules, and they are checked with it.
    assert!(out.contains("1 rule files found"), "{out}");
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules failed:\n{out}");
    let names = alert_names();
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{out}"
    );
    for needed in [
        "FuzeApiErrorRatioHigh",
        "FuzeApiLatencyHigh",
        "FuzeQueueBacklog",
        "FuzeInteractiveJobTooOld",
        "FuzeBulkJobTooOld",
        "FuzeJobFailureRatioHigh",
        "FuzeCacheSubscriberDown",
        "FuzeRedisErrors",
        "FuzeDatabaseErrors",
        "FuzeNoWorkerHeartbeat",
    ] {
        assert!(names.iter().any(|n| n == needed), "alert {needed} missing");
    }
}

#[test]
fn promtool_rejects_a_broken_rule() {
    // The check above can fail: a rule with bad PromQL does not pass.
    let path = std::env::temp_dir().join(format!("fuze-bad-rules-{}.yml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        "groups:\n  - name: bad\n    rules:\n      - alert: Bad\n        expr: sum(rate(fuze_x_total[5m])\n",
    )
    .expect("write");
    let (ok, out) = promtool(&["check", "rules", path.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&path);
    assert!(!ok, "promtool accepted a broken rule:\n{out}");
}

#[test]
fn every_alert_has_a_summary_and_a_runbook() {
    let text = std::fs::read_to_string(dashboards_dir().join("alerts.yml")).expect("alerts.yml");
    // Split at each rule; every block must annotate its alert for the person paged.
    for block in text.split("- alert:").skip(1) {
        let name = block.lines().next().unwrap_or("").trim();
        for key in ["summary:", "runbook:", "severity:", "for:"] {
            assert!(block.contains(key), "alert {name} lacks {key}");
        }
    }
}

#[test]
fn the_dashboard_imports_anywhere() {
    let d = dashboard();
    assert_eq!(
        d["__inputs"][0]["name"], "DS_PROMETHEUS",
        "datasource input"
    );
    assert_eq!(d["__inputs"][0]["pluginId"], "prometheus");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, vec!["datasource", "instance"]);
    let rows: Vec<&str> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        vec![
            "Overview",
            "API by route",
            "Jobs",
            "Scraper",
            "Embeddings",
            "Cache",
            "Database and Redis",
            "Scheduling and politeness",
            "Imports",
            "Live events"
        ]
    );
    let mut ids = HashSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_i64().expect("id")),
            "duplicate id {}",
            p["id"]
        );
    }
    for p in panels(&d) {
        let title = &p["title"];
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: datasource variable"
        );
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title}: description"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}: empty expr"
            );
        }
    }
}
