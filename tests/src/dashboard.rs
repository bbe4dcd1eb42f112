//! Reading `dashboards/fuze.json` and `dashboards/alerts.yml` the way the tests need them.

use serde_json::Value;

use crate::prometheus::dashboards_dir;

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(dashboards_dir().join("fuze.json")).expect("fuze.json");
    serde_json::from_str(&text).expect("fuze.json is JSON")
}

/// Every panel that is not a row, including panels inside collapsed rows.
pub fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten().cloned());
        } else {
            out.push(panel.clone());
        }
    }
    out
}

/// (panel title, PromQL) of every target of every panel.
pub fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// The PromQL Grafana would send with "All" instances selected and a short rate window (the test
/// Prometheus scrapes every second).
pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
}

/// Metric names a query mentions (`fuze_*` and `process_*`), for checking they are exported.
pub fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("fuze_") || t.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Names of the alert rules in alerts.yml (`- alert: Name` lines).
pub fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(dashboards_dir().join("alerts.yml")).expect("alerts.yml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_substitution() {
        let e = "sum(rate(fuze_http_requests_total{instance=~\"$instance\"}[$__rate_interval])) / process_cpu_seconds_total";
        assert_eq!(
            metric_names(e),
            vec!["fuze_http_requests_total", "process_cpu_seconds_total"]
        );
        assert_eq!(
            substitute(e),
            "sum(rate(fuze_http_requests_total{instance=~\".*\"}[10s])) / process_cpu_seconds_total"
        );
    }
}
