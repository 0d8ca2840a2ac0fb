//! The web desktop's static files, served at `/desktop/` (an open route: the
//! page authenticates inside the protocol). Embedded at build time: no build
//! step and nothing to install next to the binary.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Every file: its path under `/desktop/`, content type and bytes.
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../web/index.html"),
    ),
    (
        "desktop.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/desktop.js"),
    ),
    (
        "desktop.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/desktop.css"),
    ),
    (
        "switchover.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/switchover.js"),
    ),
];

/// `/desktop` (redirected to `/desktop/`) and the files under it.
pub(crate) fn routes() -> Router {
    let mut router = Router::new().route(
        "/desktop",
        get(|| async { Redirect::permanent("/desktop/") }),
    );
    for (name, content_type, bytes) in FILES {
        router = router.route(
            &format!("/desktop/{name}"),
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
            // A new build serves new files: the browser checks every time.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}
