//! The operator console (issue 16): one page per site at `/console/`, the
//! picture an operator needs mid-incident (sites, binds, channels, trunks,
//! the queue, agents, the failover timeline), drawn from `/v1/status`,
//! `/v1/queue/history` and the event stream.
//!
//! The files are embedded at build time (no build step, nothing installed
//! next to the binary) and served on an open route: they hold no data, and
//! every call the page makes carries the API token the operator types, which
//! the page keeps in memory only. `/` redirects here.
//!
//! The page's Content-Security-Policy allows only this origin's scripts,
//! styles and connections: no inline script, no third-party host, no framing.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the console is served.
pub const PATH: &str = "/console/";

/// The console's policy: this origin only, no inline script or style, no
/// plugins, no framing (clickjacking), forms posting nowhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file: its path under `/console/`, content type and bytes.
const FILES: [(&str, &str, &[u8]); 6] = [
    ("", HTML, include_bytes!("../../console/index.html")),
    ("console.js", JS, include_bytes!("../../console/console.js")),
    (
        "console-model.js",
        JS,
        include_bytes!("../../console/console-model.js"),
    ),
    (
        "console.css",
        CSS,
        include_bytes!("../../console/console.css"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        JS,
        include_bytes!("../../console/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        CSS,
        include_bytes!("../../console/vendor/uplot/uPlot.min.css"),
    ),
];

/// `/` and `/console` (redirected to `/console/`) and the files under it.
pub(crate) fn routes() -> Router {
    let to_console = || async { Redirect::to(PATH) };
    let mut router = Router::new()
        .route("/", get(to_console))
        .route("/console", get(to_console));
    for (name, content_type, bytes) in FILES {
        router = router.route(
            &format!("{PATH}{name}"),
            get(move || async move { file(content_type, bytes) }),
        );
    }
    router
}

fn file(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // A new build serves new files: the browser checks every time.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hotsite_core::Secret;
    use reqwest::redirect::Policy;

    use super::*;
    use crate::{Host, HostConfig, RunningHost};

    const TOKEN: &str = "console-token-1";

    async fn serve() -> (RunningHost, String, reqwest::Client) {
        let host = Host::bind(HostConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: Default::default(),
            tokens: vec![Secret::new(TOKEN)],
        })
        .await
        .unwrap();
        let host = host.serve().unwrap();
        let base = format!("http://{}", host.local_addr());
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        (host, base, http)
    }

    /// Issue 16: the console's files are served without a token, each with
    /// its type, the strict policy (this origin only, no inline script), no
    /// caching without a check, and nosniff.
    #[tokio::test]
    async fn the_console_is_served_without_a_token_under_a_strict_policy() {
        let (host, base, http) = serve().await;
        for (name, content_type, bytes) in FILES {
            let response = http
                .get(format!("{base}{PATH}{name}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{name}");
            let headers = response.headers().clone();
            assert_eq!(headers["content-type"], content_type, "{name}");
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'"), "{csp}");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(headers["cache-control"], "no-cache");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(response.bytes().await.unwrap(), bytes, "{name}");
        }
        let page = http
            .get(format!("{base}{PATH}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(r#"<script type="module" src="console.js">"#));
        assert!(page.contains(r#"src="vendor/uplot/uPlot.iife.min.js""#));
        // No inline script: every <script> names a file.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=").count()
                + page.matches("<script type=\"module\" src=").count()
        );
        host.shutdown().await;
    }

    /// `/` and `/console` lead to the console.
    #[tokio::test]
    async fn the_root_redirects_to_the_console() {
        let (host, base, http) = serve().await;
        for path in ["/", "/console"] {
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(response.status().is_redirection(), "{path}");
            assert_eq!(response.headers()["location"], PATH, "{path}");
        }
        host.shutdown().await;
    }

    /// The page holds no data: everything it shows still needs the token.
    #[tokio::test]
    async fn the_data_the_console_reads_still_needs_the_token() {
        let (host, base, http) = serve().await;
        for path in ["/v1/status", "/v1/events?limit=200", "/v1/events/stream"] {
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{path}");
            let wrong = http
                .get(format!("{base}{path}"))
                .bearer_auth("not-the-token")
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status().as_u16(), 401, "{path}");
        }
        let status = http
            .get(format!("{base}/v1/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(status.status().as_u16(), 200);
        // An unknown file under /console/ is a 404, not the page.
        let missing = http
            .get(format!("{base}{PATH}secret.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        host.shutdown().await;
    }
}
