//! The local cluster's nginx (`scripts/cluster.sh`) stands in for the
//! Kubernetes Ingress (`k8s/base/ingress.yaml`) in every multi-replica test
//! and benchmark, so it must route every path to the same service. Both are
//! read from the repository and compared on the paths clients use.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Paths clients request, and near misses of each route's edges.
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/admin.html",
    "/static/main.js",
    "/ws",
    "/ws/",
    "/ws?batch=1",
    "/healthz",
    "/metrics",
    "/api",
    "/api/",
    "/api/config",
    "/api/canvas.bin",
    "/api/pixel",
    "/api/updates?since=1",
    "/api/admin/bans",
    "/api/events",
    "/api/events?region=0,0,9,9",
    "/api/events/",
    "/api/eventsx",
    "/apix",
];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
}

/// One route: a path, how it matches, and the service it reaches.
#[derive(Debug, Clone, PartialEq)]
struct Route {
    path: String,
    exact: bool,
    service: String,
}

/// The Ingress's routes, with ingress-nginx's matching: `Exact` first, then
/// the longest `Prefix` that matches whole path elements.
fn ingress_routes() -> Vec<Route> {
    let text = std::fs::read_to_string(repo_root().join("k8s/base/ingress.yaml"))
        .expect("read k8s/base/ingress.yaml");
    let mut routes = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let doc = Value::deserialize(doc).expect("valid YAML");
        if doc["kind"] != "Ingress" {
            continue;
        }
        for rule in doc["spec"]["rules"].as_array().expect("rules") {
            for p in rule["http"]["paths"].as_array().expect("paths") {
                routes.push(Route {
                    path: p["path"].as_str().expect("path").to_owned(),
                    exact: match p["pathType"].as_str() {
                        Some("Exact") => true,
                        Some("Prefix") => false,
                        other => panic!("pathType {other:?}: teach this test its matching"),
                    },
                    service: p["backend"]["service"]["name"]
                        .as_str()
                        .expect("service")
                        .to_owned(),
                });
            }
        }
    }
    assert!(!routes.is_empty(), "the Ingress has no routes");
    routes
}

fn ingress_service(routes: &[Route], path: &str) -> Option<String> {
    if let Some(r) = routes.iter().find(|r| r.exact && r.path == path) {
        return Some(r.service.clone());
    }
    routes
        .iter()
        .filter(|r| !r.exact)
        .filter(|r| {
            let prefix = r.path.trim_end_matches('/');
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| r.path.len())
        .map(|r| r.service.clone())
}

/// The `location` blocks of the nginx server that players use, with
/// nginx's matching: `location =` first, then the longest prefix. Upstream
/// names map to the Services they stand for.
fn nginx_routes() -> Vec<Route> {
    let script = std::fs::read_to_string(repo_root().join("scripts/cluster.sh"))
        .expect("read scripts/cluster.sh");
    let start = script
        .find("What players and load tests use")
        .expect("cluster.sh marks the players' server block");
    let block = &script[start..];
    let end = block
        .find("\n  }\n")
        .expect("the players' server block ends");
    let block = &block[..end];
    let mut routes = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in block.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("location ") {
            let rest = rest.trim_end_matches('{').trim();
            current = Some(match rest.strip_prefix("= ") {
                Some(path) => (path.trim().to_owned(), true),
                None => (rest.to_owned(), false),
            });
        } else if let Some(upstream) = line.strip_prefix("proxy_pass http://") {
            let (path, exact) = current.take().expect("proxy_pass inside a location");
            let service = match upstream.trim_end_matches(';') {
                "gateways" => "gateway",
                "canvas_api" => "canvas-api",
                other => panic!("unknown upstream {other}"),
            };
            routes.push(Route {
                path,
                exact,
                service: service.to_owned(),
            });
        }
    }
    assert!(
        !routes.is_empty(),
        "no location in the players' server block"
    );
    routes
}

fn nginx_service(routes: &[Route], path: &str) -> Option<String> {
    if let Some(r) = routes.iter().find(|r| r.exact && r.path == path) {
        return Some(r.service.clone());
    }
    routes
        .iter()
        .filter(|r| !r.exact && path.starts_with(&r.path))
        .max_by_key(|r| r.path.len())
        .map(|r| r.service.clone())
}

#[test]
fn the_local_clusters_nginx_routes_every_path_like_the_ingress() {
    let ingress = ingress_routes();
    let nginx = nginx_routes();
    let mut disagreements = Vec::new();
    for full in PATHS {
        // Neither routes on the query string.
        let path = full.split('?').next().expect("a path");
        let (a, b) = (ingress_service(&ingress, path), nginx_service(&nginx, path));
        if a.is_none() || a != b {
            disagreements.push(format!("{full}: Ingress {a:?}, nginx {b:?}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "scripts/cluster.sh routes differently from k8s/base/ingress.yaml:\n{}",
        disagreements.join("\n")
    );
}

#[test]
fn route_matching_follows_each_proxys_rules() {
    // The two matchers differ where the proxies do: an Ingress `Prefix`
    // matches whole path elements, an nginx prefix matches characters.
    let prefix = |path: &str| Route {
        path: path.to_owned(),
        exact: false,
        service: "s".to_owned(),
    };
    let ingress = [prefix("/api")];
    assert_eq!(ingress_service(&ingress, "/api"), Some("s".into()));
    assert_eq!(ingress_service(&ingress, "/api/x"), Some("s".into()));
    assert_eq!(ingress_service(&ingress, "/apix"), None);
    let nginx = [prefix("/api/")];
    assert_eq!(nginx_service(&nginx, "/api/x"), Some("s".into()));
    assert_eq!(nginx_service(&nginx, "/api"), None);
    assert_eq!(nginx_service(&[prefix("/api")], "/apix"), Some("s".into()));
}
