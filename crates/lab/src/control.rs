//! The HTTP control API: read counters, inject faults, send MOs.
//!
//! JSON in and out; every error is `{"error": "..."}` with 400 for a bad request
//! and 404 for an unknown site or instance. The routes are listed in the crate
//! docs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hotsite_core::Target;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::fault::Fault;
use crate::lab::{self, LabError};
use crate::smpp::Shared;
use crate::traffic::{HandsetMessage, MoRequest};

/// Serves the control API on `listener` until the lab shuts down.
pub(crate) fn spawn(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.shutdown.clone();
    let router = router(Arc::clone(&shared));
    shared.tasks.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "control API stopped");
        }
    });
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/stats", get(get_stats))
        .route("/v1/smsc/{site}/{name}/fault", post(post_fault))
        .route("/v1/mo", post(post_mo))
        .route("/v1/handsets", get(get_handsets))
        .with_state(shared)
}

/// An error as the API reports it.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<LabError> for ApiError {
    fn from(error: LabError) -> ApiError {
        let status = match error {
            LabError::UnknownSmsc(_) | LabError::UnknownSite(_) => StatusCode::NOT_FOUND,
            LabError::UnknownAccount(_) | LabError::InvalidFault(_) | LabError::InvalidMo(_) => {
                StatusCode::BAD_REQUEST
            }
            LabError::Config(_) | LabError::Listen { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

/// Parses a JSON body ourselves rather than with axum's `Json` extractor, so
/// every malformed body is a 400 with a JSON error, never a plain-text 415/422.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid request body: {error}"),
    })
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(lab::stats(&shared)).into_response()
}

async fn post_fault(
    State(shared): State<Arc<Shared>>,
    Path((site, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::new(&site, &name);
    // An unknown instance is reported as such even when the body is bad too.
    if shared.instance_index(&target).is_none() {
        return Err(LabError::UnknownSmsc(target).into());
    }
    let fault: Fault = parse_body(&body)?;
    lab::set_fault(&shared, &target, fault)?;
    Ok(Json(serde_json::json!({ "smsc": target.to_string(), "fault": fault })).into_response())
}

async fn post_mo(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let request: MoRequest = parse_body(&body)?;
    let dispatch = lab::send_mo(&shared, request)?;
    Ok(Json(dispatch).into_response())
}

#[derive(Deserialize)]
struct HandsetQuery {
    /// Only the most recent `limit` entries.
    limit: Option<usize>,
}

async fn get_handsets(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<HandsetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid query: {rejection}"),
    })?;
    let log: Vec<HandsetMessage> = {
        let provider = shared.provider();
        let all = provider.handsets();
        let skip = query
            .limit
            .map_or(0, |limit| all.len().saturating_sub(limit));
        all[skip..].to_vec()
    };
    Ok(Json(log).into_response())
}
