//! HTTP requests counted by route, method and status class, for both
//! services' `/metrics`. The route is the router's template (`/api/pixel/{x}/{y}`),
//! never the raw path, and methods and statuses are folded into a few
//! values, so the number of series stays small whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Requests answered, per (route template, method, status class).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    counts: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
}

impl HttpMetrics {
    /// Counts one answered request. `route` is `None` for a path no route
    /// matched (counted as `unmatched`).
    pub fn record(&self, route: Option<&str>, method: &Method, status: u16) {
        let key = (
            route.unwrap_or("unmatched").to_owned(),
            method_label(method),
            status_class(status),
        );
        let mut counts = self.counts.lock().expect("http metrics lock");
        *counts.entry(key).or_default() += 1;
    }

    /// Writes `NAME{route,method,status} N`, one series per combination seen.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let counts = self.counts.lock().expect("http metrics lock");
        for ((route, method, status), n) in counts.iter() {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }
}

/// Middleware for [`axum::Router::layer`], where the router has already
/// matched the request: counts it once its response is ready.
pub async fn count_requests(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.record(route.as_deref(), &method, response.status().as_u16());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A label value's `\` and `"` escaped (route templates hold neither
/// today; a future one must not break the format).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_template_method_and_status_class() {
        let m = HttpMetrics::default();
        m.record(Some("/api/pixel/{x}/{y}"), &Method::GET, 200);
        m.record(Some("/api/pixel/{x}/{y}"), &Method::GET, 204);
        m.record(Some("/api/pixel"), &Method::PUT, 429);
        m.record(None, &Method::from_bytes(b"BREW").unwrap(), 404);
        let mut out = String::new();
        m.render(&mut out, "x_http_requests_total", "Help.");
        for line in [
            "x_http_requests_total{route=\"/api/pixel/{x}/{y}\",method=\"GET\",status=\"2xx\"} 2",
            "x_http_requests_total{route=\"/api/pixel\",method=\"PUT\",status=\"4xx\"} 1",
            "x_http_requests_total{route=\"unmatched\",method=\"other\",status=\"4xx\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
        }
    }
}
