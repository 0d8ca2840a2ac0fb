//! The HTTP control API: read counters, inject faults, send MOs, read what the
//! handsets, webhook receivers and SMTP sink got, move DNS records, command
//! phones, cut links, and hand media servers' calls over and fetch their
//! recordings.
//!
//! JSON in and out; every error is `{"error": "..."}` with 400 for a bad request
//! and 404 for an unknown site or instance. The routes are listed in the crate
//! docs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hotsite_core::Target;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::fault::Fault;
use crate::http::{HttpFault, ServerRef};
use crate::lab::{self, LabError};
use crate::media::MediaError;
use crate::port::lock;
use crate::shared::Shared;
use crate::sip::{PhoneCommand, SipError};
use crate::smtp::SmtpFault;
use crate::traffic::{HandsetMessage, HttpMoRequest, MoRequest};

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
        .route("/v1/http/sites/{name}/fault", post(post_http_site_fault))
        .route("/v1/http/mo", post(post_http_mo))
        .route("/v1/webhooks/{name}/fault", post(post_webhook_fault))
        .route("/v1/webhooks/{name}/messages", get(get_webhook_messages))
        .route("/v1/dns", get(get_dns))
        .route("/v1/dns/records", post(post_dns_record))
        .route("/v1/smtp/fault", post(post_smtp_fault))
        .route("/v1/smtp/mails", get(get_smtp_mails))
        .route("/v1/phones", get(get_phones))
        .route("/v1/phones/{dn}/command", post(post_phone_command))
        .route("/v1/links", get(get_links))
        .route("/v1/links/{name}/cut", post(post_link_cut))
        .route("/v1/links/{name}/restore", post(post_link_restore))
        .route("/v1/media_servers", get(get_media_servers))
        .route("/v1/media_servers/{name}/calls", get(get_media_calls))
        .route(
            "/v1/media_servers/{name}/handover",
            post(post_media_handover),
        )
        .route(
            "/v1/media_servers/{name}/recordings/{call_id}",
            get(get_media_recording),
        )
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
            LabError::UnknownSmsc(_)
            | LabError::UnknownSite(_)
            | LabError::UnknownWebhook(_)
            | LabError::UnknownPhone(_)
            | LabError::UnknownLink(_)
            | LabError::UnknownMediaServer(_)
            | LabError::Media(MediaError::UnknownCall(_))
            | LabError::NotConfigured(_) => StatusCode::NOT_FOUND,
            LabError::Media(MediaError::NotUp { .. } | MediaError::InHandover(_)) => {
                StatusCode::CONFLICT
            }
            LabError::UnknownAccount(_)
            | LabError::InvalidFault(_)
            | LabError::InvalidMo(_)
            | LabError::InvalidDns(_)
            | LabError::Sip(SipError::Invalid(_))
            | LabError::Media(MediaError::Invalid(_) | MediaError::Sip(SipError::Invalid(_))) => {
                StatusCode::BAD_REQUEST
            }
            LabError::Config(_)
            | LabError::Listen { .. }
            | LabError::HttpClient(_)
            | LabError::Sip(SipError::Bind { .. })
            | LabError::Media(MediaError::Sip(SipError::Bind { .. }))
            | LabError::Link(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
struct LimitQuery {
    /// Only the most recent `limit` entries.
    limit: Option<usize>,
}

impl LimitQuery {
    fn read(query: Result<Query<LimitQuery>, QueryRejection>) -> Result<LimitQuery, ApiError> {
        let Query(query) = query.map_err(|rejection| ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid query: {rejection}"),
        })?;
        Ok(query)
    }

    /// The last `limit` entries of `all`, or all of them.
    fn tail<T: Clone>(&self, all: &[T]) -> Vec<T> {
        let skip = self
            .limit
            .map_or(0, |limit| all.len().saturating_sub(limit));
        all[skip..].to_vec()
    }
}

async fn get_handsets(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = LimitQuery::read(query)?;
    let log: Vec<HandsetMessage> = query.tail(shared.provider().handsets());
    Ok(Json(log).into_response())
}

async fn post_http_site_fault(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let index = shared
        .http_site_index(&name)
        .ok_or_else(|| LabError::UnknownSite(name.clone()))?;
    let fault: HttpFault = parse_body(&body)?;
    shared.set_http_fault(ServerRef::Site(index), fault)?;
    Ok(Json(serde_json::json!({ "http_site": name, "fault": fault })).into_response())
}

async fn post_webhook_fault(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let index = shared
        .webhook_index(&name)
        .ok_or_else(|| LabError::UnknownWebhook(name.clone()))?;
    let fault: HttpFault = parse_body(&body)?;
    shared.set_http_fault(ServerRef::Webhook(index), fault)?;
    Ok(Json(serde_json::json!({ "webhook": name, "fault": fault })).into_response())
}

async fn post_http_mo(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: HttpMoRequest = parse_body(&body)?;
    let dispatch = lab::send_http_mo(&shared, request)?;
    Ok(Json(dispatch).into_response())
}

async fn get_webhook_messages(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let index = shared
        .webhook_index(&name)
        .ok_or_else(|| LabError::UnknownWebhook(name.clone()))?;
    let query = LimitQuery::read(query)?;
    let log = query.tail(&lock(&shared.webhooks[index].state).log);
    Ok(Json(log).into_response())
}

async fn get_dns(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let dns = shared
        .dns
        .as_ref()
        .ok_or(LabError::NotConfigured("lab.dns"))?;
    Ok(Json(dns.stats()).into_response())
}

/// `POST /v1/dns/records`: moves or adds a record.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsRecordRequest {
    name: String,
    addrs: Vec<IpAddr>,
}

async fn post_dns_record(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dns = shared
        .dns
        .as_ref()
        .ok_or(LabError::NotConfigured("lab.dns"))?;
    let request: DnsRecordRequest = parse_body(&body)?;
    let name = dns.set(&request.name, request.addrs.clone())?;
    Ok(Json(serde_json::json!({ "name": name, "addrs": request.addrs })).into_response())
}

async fn post_smtp_fault(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if shared.smtp.is_none() {
        return Err(LabError::NotConfigured("lab.smtp").into());
    }
    let fault: SmtpFault = parse_body(&body)?;
    shared.set_smtp_fault(fault)?;
    Ok(Json(serde_json::json!({ "smtp": "sink", "fault": fault })).into_response())
}

async fn get_smtp_mails(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let smtp = shared
        .smtp
        .as_ref()
        .ok_or(LabError::NotConfigured("lab.smtp"))?;
    let query = LimitQuery::read(query)?;
    Ok(Json(query.tail(&smtp.mails())).into_response())
}

async fn get_phones(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.peers().phone_stats()).into_response()
}

/// `POST /v1/phones/{dn}/command`: `{"command": "stop_registering"}` and the
/// like; answers the command with the phone's DN.
async fn post_phone_command(
    State(shared): State<Arc<Shared>>,
    Path(dn): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // An unknown phone is reported as such even when the body is bad too.
    let known = shared
        .peers()
        .phone_addrs()
        .into_iter()
        .any(|(known, _)| known == dn);
    if !known {
        return Err(LabError::UnknownPhone(dn).into());
    }
    let command: PhoneCommand = parse_body(&body)?;
    shared.peers().phone_command(&dn, command.clone())?;
    let mut answer = serde_json::to_value(&command).unwrap_or_default();
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("phone".to_owned(), serde_json::Value::String(dn));
    }
    Ok(Json(answer).into_response())
}

async fn get_links(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.peers().link_stats()).into_response()
}

/// `POST /v1/links/{name}/cut` (any body): cuts the link (SPEC S4); answers
/// its stats.
async fn post_link_cut(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let peers = shared.peers();
    let link = peers.link(&name)?;
    link.cut();
    Ok(Json(link.stats()).into_response())
}

/// `POST /v1/links/{name}/restore` (any body): restores the link; answers its
/// stats.
async fn post_link_restore(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let peers = shared.peers();
    let link = peers.link(&name)?;
    link.restore().map_err(LabError::from)?;
    Ok(Json(link.stats()).into_response())
}

async fn get_media_servers(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let peers = shared.peers();
    let mut servers = Vec::new();
    for (name, addr) in peers.media_server_addrs() {
        let stats = peers.media_server(&name)?.stats();
        servers.push(serde_json::json!({ "name": name, "addr": addr, "stats": stats }));
    }
    Ok(Json(servers).into_response())
}

async fn get_media_calls(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let calls = shared.peers().media_server(&name)?.calls();
    Ok(Json(calls).into_response())
}

/// `POST /v1/media_servers/{name}/handover`: which call (all calls up when
/// absent) and how long a gap (the server's default when absent), in the
/// JSON body or the query.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoverRequest {
    call_id: Option<String>,
    gap_ms: Option<u64>,
}

/// The longest gap a command may ask for: ten minutes.
const MAX_HANDOVER_GAP_MS: u64 = 600_000;

async fn post_media_handover(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<HandoverRequest>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // An unknown server is reported as such even when the request is bad too.
    shared.peers().media_server(&name)?;
    let Query(query) = query.map_err(|rejection| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid query: {rejection}"),
    })?;
    let from_body: HandoverRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HandoverRequest::default()
    } else {
        parse_body(&body)?
    };
    let call_id = from_body.call_id.or(query.call_id);
    let gap_ms = from_body.gap_ms.or(query.gap_ms);
    if gap_ms.is_some_and(|gap| gap > MAX_HANDOVER_GAP_MS) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("gap_ms: must be at most {MAX_HANDOVER_GAP_MS}"),
        });
    }
    let started = shared
        .peers()
        .media_server(&name)?
        .handover(call_id.as_deref(), gap_ms.map(Duration::from_millis));
    let started = started.map_err(LabError::from)?;
    Ok(Json(serde_json::json!({ "media_server": name, "handovers": started })).into_response())
}

/// `GET /v1/media_servers/{name}/recordings/{call_id}`: the recording's
/// paths (JSON), or with `?file=wav` / `?file=json` the file itself, as a
/// provider's archive serves it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingQuery {
    file: Option<String>,
}

async fn get_media_recording(
    State(shared): State<Arc<Shared>>,
    Path((name, call_id)): Path<(String, String)>,
    query: Result<Query<RecordingQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid query: {rejection}"),
    })?;
    let call = shared
        .peers()
        .media_server(&name)?
        .call(&call_id)
        .ok_or_else(|| LabError::from(MediaError::UnknownCall(call_id.clone())))?;
    let not_yet = || ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "call {call_id:?} has no recording yet (it is {}{})",
            call.state,
            call.recording_error
                .as_deref()
                .map(|error| format!("; writing failed: {error}"))
                .unwrap_or_default()
        ),
    };
    let Some(paths) = call.recording.clone() else {
        return Err(not_yet());
    };
    let (path, content_type) = match query.file.as_deref() {
        None => {
            let answer = serde_json::json!({
                "call_id": call_id,
                "dir": paths.dir,
                "wav": paths.wav,
                "json": paths.json,
            });
            return Ok(Json(answer).into_response());
        }
        Some("wav") => (paths.wav, "audio/wav"),
        Some("json") => (paths.json, "application/json"),
        Some(other) => {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                message: format!("file: {other:?} is neither \"wav\" nor \"json\""),
            })
        }
    };
    let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
    match read {
        Ok(Ok(bytes)) => Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response()),
        Ok(Err(error)) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("cannot read the recording: {error}"),
        }),
        Err(error) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("cannot read the recording: {error}"),
        }),
    }
}
