//! The static web client, compiled into the binary so the single-process
//! default serves it from any working directory.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `web/`, by URL path. `web/static/NAME` is served at
/// `/static/NAME`.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", HTML, include_bytes!("../../web/index.html")),
    ("/index.html", HTML, include_bytes!("../../web/index.html")),
    ("/admin.html", HTML, include_bytes!("../../web/admin.html")),
    (
        "/static/admin.js",
        JS,
        include_bytes!("../../web/static/admin.js"),
    ),
    (
        "/static/admin.css",
        CSS,
        include_bytes!("../../web/static/admin.css"),
    ),
    (
        "/static/style.css",
        CSS,
        include_bytes!("../../web/static/style.css"),
    ),
    (
        "/static/main.js",
        JS,
        include_bytes!("../../web/static/main.js"),
    ),
    (
        "/static/board.js",
        JS,
        include_bytes!("../../web/static/board.js"),
    ),
    (
        "/static/sync.js",
        JS,
        include_bytes!("../../web/static/sync.js"),
    ),
    (
        "/static/view.js",
        JS,
        include_bytes!("../../web/static/view.js"),
    ),
    (
        "/static/ui.js",
        JS,
        include_bytes!("../../web/static/ui.js"),
    ),
    (
        "/static/session.js",
        JS,
        include_bytes!("../../web/static/session.js"),
    ),
    (
        "/static/history.js",
        JS,
        include_bytes!("../../web/static/history.js"),
    ),
    (
        "/static/template.js",
        JS,
        include_bytes!("../../web/static/template.js"),
    ),
    (
        "/static/template_panel.js",
        JS,
        include_bytes!("../../web/static/template_panel.js"),
    ),
    (
        "/static/heatmap.js",
        JS,
        include_bytes!("../../web/static/heatmap.js"),
    ),
    (
        "/static/minimap.js",
        JS,
        include_bytes!("../../web/static/minimap.js"),
    ),
    (
        "/static/wire.js",
        JS,
        include_bytes!("../../web/static/wire.js"),
    ),
    (
        "/static/chunked_board.js",
        JS,
        include_bytes!("../../web/static/chunked_board.js"),
    ),
    (
        "/static/chunk_sync.js",
        JS,
        include_bytes!("../../web/static/chunk_sync.js"),
    ),
    (
        "/static/chunk_loader.js",
        JS,
        include_bytes!("../../web/static/chunk_loader.js"),
    ),
];

/// The board page's policy: its own scripts and styles only, WebSockets to
/// any host (the page may be served apart from its gateways), and no page
/// may frame it. The same as its `<meta>` tag, plus `frame-ancestors`, which
/// only a header can carry.
const INDEX_CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// The moderation page's: as the board's, with no WebSocket.
const ADMIN_CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The file at `path`, if the client has one there.
pub fn file(path: &str) -> Option<Response> {
    let (_, content_type, bytes) = FILES.iter().find(|(p, _, _)| *p == path)?;
    let mut response = (StatusCode::OK, *bytes).into_response();
    let h = response.headers_mut();
    if *content_type == HTML {
        let csp = if path == "/admin.html" {
            ADMIN_CSP
        } else {
            INDEX_CSP
        };
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        let (_, _, bytes) = FILES
            .iter()
            .find(|(p, _, _)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not embedded"));
        std::str::from_utf8(bytes).expect("utf-8")
    }

    /// The quoted paths after each `marker` in `source`.
    fn references<'a>(source: &'a str, marker: &str) -> Vec<&'a str> {
        source
            .split(marker)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let mut wanted: Vec<String> = Vec::new();
        for page in ["/index.html", "/admin.html"] {
            for marker in ["src=\"", "href=\""] {
                wanted.extend(
                    references(text(page), marker)
                        .into_iter()
                        .filter(|p| p.starts_with('/'))
                        .map(str::to_owned),
                );
            }
        }
        for (path, content_type, _) in FILES {
            if *content_type == JS {
                for import in references(text(path), "from \"./") {
                    wanted.push(format!("/static/{import}"));
                }
            }
        }
        assert!(wanted.iter().any(|p| p == "/static/main.js"), "{wanted:?}");
        assert!(wanted.iter().any(|p| p == "/static/admin.js"), "{wanted:?}");
        for path in &wanted {
            assert!(
                file(path).is_some(),
                "{path} is referenced but not embedded"
            );
        }
    }

    #[test]
    fn types_follow_the_extension() {
        for (path, content_type, _) in FILES {
            let expected = match path.rsplit('.').next() {
                Some("css") => CSS,
                Some("js") => JS,
                _ => HTML,
            };
            assert_eq!(*content_type, expected, "{path}");
        }
        assert!(file("/static/nope.js").is_none());
    }

    #[test]
    fn pages_send_their_meta_policy_as_a_header_and_refuse_framing() {
        for page in ["/", "/index.html", "/admin.html"] {
            let response = file(page).unwrap();
            let h = response.headers();
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            let meta = text(page)
                .split("http-equiv=\"Content-Security-Policy\" content=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{page} has no CSP meta tag"));
            assert_eq!(csp, format!("{meta}; frame-ancestors 'none'"), "{page}");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{page}");
        }
        let script = file("/static/main.js").unwrap();
        assert!(script.headers().get(header::X_FRAME_OPTIONS).is_none());
    }
}
