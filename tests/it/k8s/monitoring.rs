//! What the monitoring artifacts in `k8s/monitoring/` ask of the services:
//! every PromQL query of the Grafana dashboard and the PrometheusRule, and
//! the metric names in them (checked against a live `/metrics` scrape by
//! `crate::metrics`).

use serde_json::Value;

use super::manifests::{array, kustomize, repo_root};

/// The Grafana dashboard, parsed.
pub fn dashboard() -> Value {
    let path = repo_root().join("k8s/monitoring/dashboard.json");
    let text = std::fs::read_to_string(&path).expect("read k8s/monitoring/dashboard.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard.json is not JSON: {e}"))
}

/// Every query of the dashboard and the alert rules: (where, expression).
pub fn queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in array(&dashboard()["panels"]) {
        for target in array(&panel["targets"]) {
            queries.push((
                format!("dashboard panel {}", panel["title"]),
                target["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for rule in kustomize("k8s/monitoring")
        .iter()
        .filter(|o| o["kind"] == "PrometheusRule")
        .flat_map(|o| array(&o["spec"]["groups"]))
        .flat_map(|g| array(&g["rules"]))
    {
        queries.push((
            format!("alert {}", rule["alert"]),
            rule["expr"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    queries
}

/// Series Prometheus makes itself: not exported by the services.
pub const SYNTHETIC: &[&str] = &["up"];

/// The metric names a PromQL expression selects: identifiers that are not
/// functions or aggregations (followed by `(`), keywords, grouping labels
/// (`by (le)`), label matchers (`{…}`), ranges (`[5m]`) or strings.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_past(&chars, i + 1, c),
            '{' => i = skip_past(&chars, i + 1, '}'),
            '[' => i = skip_past(&chars, i + 1, ']'),
            '(' if grouping => {
                i = skip_past(&chars, i + 1, ')');
                grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    grouping = true;
                } else if !is_keyword(&word) && next != Some(&'(') {
                    names.push(word);
                }
            }
            // A number, which may hold an exponent's `e`.
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Operators and aggregations (which may come before `by (…)` rather than
/// their `(`).
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "bool"
            | "and"
            | "or"
            | "unless"
            | "offset"
            | "sum"
            | "min"
            | "max"
            | "avg"
            | "group"
            | "stddev"
            | "stdvar"
            | "count"
            | "count_values"
            | "bottomk"
            | "topk"
            | "quantile"
    )
}

/// The index just past the next `end` from `from` (or the end).
fn skip_past(chars: &[char], from: usize, end: char) -> usize {
    chars[from..]
        .iter()
        .position(|c| *c == end)
        .map_or(chars.len(), |p| from + p + 1)
}

/// Whether every `(`, `[` and `{` of `expr` is closed in order.
pub fn balanced(expr: &str) -> bool {
    let mut open = Vec::new();
    for c in expr.chars() {
        match c {
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return false;
                }
            }
            _ => {}
        }
    }
    open.is_empty()
}

#[test]
fn metric_names_are_read_out_of_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(gateway_placement_seconds_bucket{job=\"gateway\"}[5m]))) > 0.25"
        ),
        ["gateway_placement_seconds_bucket"]
    );
    assert_eq!(
        metric_names("process_open_fds / process_max_fds > 0.8e0"),
        ["process_open_fds", "process_max_fds"]
    );
    assert_eq!(
        metric_names("absent(up{job=\"canvas-api\"} == 1) or sum without (pod) (x_total) unless y"),
        ["up", "x_total", "y"]
    );
    assert!(balanced("sum(rate(x[5m]))"));
    assert!(!balanced("sum(rate(x[5m])"));
    assert!(!balanced("sum(rate(x[5m)])"));
}
