//! The proxy's side of media anchoring (`crate::media`): where the SIP
//! messages of calls to `media = "anchor"` groups have their SDP rewritten,
//! and when their media is released. Calls to `direct` groups never reach
//! any of this past a group check or an empty-table check.
//!
//! - The caller's INVITE: its SDP is rewritten once, before the server
//!   transaction holds it, so every attempt (failover included) carries the
//!   same b-side ports. A body that is not SDP or cannot be read gets 488
//!   with a `Warning` naming the fault, and no ports free gets 503: a call
//!   to an anchored group is never forwarded unanchored (the recording
//!   would silently miss it).
//! - 18x from the trunk: rewritten before the server transaction relays it.
//! - 2xx (and its retransmissions, relayed statelessly along the Via, as
//!   every answer to an in-dialog request): rewritten in
//!   `relay_response`; a 2xx to INVITE arms the media timeout. The media
//!   session outlives the call's transaction state: it is keyed by Call-ID
//!   and lives until BYE or the media timeout.
//! - In-dialog INVITE, UPDATE, PRACK and ACK: rewritten in the direction
//!   they go (from tag = the caller's: from leg a). A request whose SDP
//!   cannot be read, or offers SRTP, gets 488; an ACK (which cannot be
//!   refused) or a response is relayed as it came and counted
//!   (`sdp_unanchored`). The offer of an in-dialog INVITE or UPDATE is
//!   committed by the 2xx and undone by a non-2xx final answer (488, 491,
//!   500…: `MediaSessions::offer_answered`, SPEC R5).
//! - The trunk that answers: a failover, or a 2xx from another trunk than
//!   the last one tried, is reported to the tap as the call's move
//!   (`MediaOutput::Moved`, SPEC V3).
//! - Released: BYE from either side, the caller's final non-2xx
//!   (`Failed`), CANCEL (`Cancelled`), or the relay's media timeout, which
//!   leaves the signalling alone (hotsite is not a party to the dialog).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hotsite_core::{Event, EventKind, Target};
use hotsite_sip::message::{HeaderName, Headers, Method, Request, Response, StatusCode};

use super::{Proxy, ProxyEvent, TrunkRef};
use crate::media::sessions::{
    AnchorError, AnchorInfo, MediaOutput, MediaSessionStats, MediaSessions, SdpRole,
};
use crate::media::{Leg, MediaEnd};

/// Whether a group's calls are anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaMode {
    /// Media goes between the caller and the trunk; SDP untouched.
    #[default]
    Direct,
    /// Media passes through hotsite (`crate::media`).
    Anchor,
}

/// A call's media ended by the relay's timeout (no RTP from either leg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTimeout {
    /// When the driver learnt of it.
    pub at: Instant,
    /// The call.
    pub call_id: String,
    /// The trunk it was last sent to, and its carrier.
    pub trunk: Option<(String, String)>,
}

/// What a message's body is, for anchoring.
enum Body {
    /// No body.
    None,
    /// An SDP body.
    Sdp(Bytes),
    /// Another body; the text says which, for a 488.
    Other(String),
}

impl Proxy {
    /// The next media output for the driver (see `crate::media::relay`).
    pub fn poll_media(&mut self) -> Option<MediaOutput> {
        self.media.as_mut()?.poll_output()
    }

    /// Whether [`Proxy::poll_media`] has something.
    pub fn has_media_output(&self) -> bool {
        self.media.as_ref().is_some_and(|m| m.has_output())
    }

    /// The driver bound the media pair at `port`.
    pub fn handle_media_bound(&mut self, port: u16) {
        if let Some(media) = &mut self.media {
            media.handle_bound(port);
        }
    }

    /// The driver could not bind the media pair at `port`.
    pub fn handle_media_bind_failed(&mut self, now: Instant, port: u16) {
        if let Some(media) = &mut self.media {
            media.handle_bind_failed(now, port);
        }
    }

    /// A call's relay task ended and closed its sockets (`timed_out`: by
    /// its media timeout, which is reported as an event).
    pub fn handle_media_ended(&mut self, now: Instant, id: u64, timed_out: bool) {
        let Some(timeout) = self
            .media
            .as_mut()
            .and_then(|m| m.handle_ended(id, timed_out))
        else {
            return;
        };
        let trunk = timeout
            .trunk
            .map(|info| (info.trunk.to_string(), info.carrier.to_string()));
        self.events
            .push_back(ProxyEvent::MediaTimeout(MediaTimeout {
                at: now,
                call_id: timeout.call_id.to_string(),
                trunk,
            }));
    }

    /// The media side's counters, if any group anchors.
    pub fn media_stats(&self) -> Option<MediaSessionStats> {
        self.media.as_ref().map(|m| m.stats())
    }

    /// Anchors a new call's INVITE (group with `media = "anchor"`): its
    /// body is replaced by the rewritten SDP. `Err`: the answer to give.
    pub(super) fn anchor_invite(
        &mut self,
        now: Instant,
        request: &mut Request,
    ) -> Result<(), (StatusCode, String)> {
        let Some(media) = &mut self.media else {
            return Ok(());
        };
        let not_acceptable = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
        let body = match body_of(&request.headers, &request.body) {
            Body::None => None,
            Body::Sdp(body) => Some(body),
            Body::Other(what) => {
                media.note_rejected();
                return Err((
                    not_acceptable,
                    format!("media is anchored here: {what} cannot be anchored"),
                ));
            }
        };
        let call_id = request.headers.call_id().unwrap_or_default();
        let tag = from_tag(&request.headers);
        match media.open(now, call_id, &tag, body.as_ref()) {
            Ok(Some(rewritten)) => request.body = rewritten,
            Ok(None) => {}
            Err(error @ AnchorError::NoPorts { .. }) => {
                tracing::warn!(call_id, %error, "call refused: no media ports");
                return Err((StatusCode::SERVICE_UNAVAILABLE, error.to_string()));
            }
            Err(error) => {
                tracing::debug!(call_id, %error, "call refused: SDP not anchored");
                return Err((not_acceptable, error.to_string()));
            }
        }
        Ok(())
    }

    /// A call's INVITE goes to `trunk` of `group` (the first time, it is
    /// anchored). Takes the fields it needs, so the caller may hold the call.
    pub(super) fn anchor_attempt(
        media: &mut MediaSessions,
        now: Instant,
        call_id: &str,
        group: &Arc<str>,
        trunk: &TrunkRef,
    ) {
        if !media.contains(call_id) {
            return;
        }
        let info = AnchorInfo {
            trunk: trunk.name.clone(),
            carrier: trunk.carrier.clone(),
            group: group.clone(),
            media_region: trunk.media_region.clone(),
            failover_region: trunk.failover_region.clone(),
        };
        media.attempt(now, call_id, info);
    }

    /// A call's 2xx came from `trunk` of `group`: if that is another trunk
    /// than the last one tried, the call moved to it (SPEC V3).
    pub(super) fn anchor_answered_by(
        media: &mut MediaSessions,
        now: Instant,
        call_id: &str,
        group: &Arc<str>,
        trunk: &TrunkRef,
    ) {
        if !media.contains(call_id) {
            return;
        }
        let info = AnchorInfo {
            trunk: trunk.name.clone(),
            carrier: trunk.carrier.clone(),
            group: group.clone(),
            media_region: trunk.media_region.clone(),
            failover_region: trunk.failover_region.clone(),
        };
        media.answered_by(now, call_id, info);
    }

    /// A response (18x through the server transaction, or one relayed
    /// statelessly) of an anchored call: its SDP rewritten for the leg it
    /// goes to; a 2xx to INVITE arms the media timeout.
    pub(super) fn anchor_response(
        &mut self,
        now: Instant,
        response: &mut Response,
        method: &Method,
    ) {
        let Some(media) = &mut self.media else {
            return;
        };
        if media.is_empty() {
            return;
        }
        let Some(call_id) = response.headers.call_id() else {
            return;
        };
        if !media.contains(call_id) {
            return;
        }
        let answered = *method == Method::Invite && response.status.is_success();
        let tag = from_tag(&response.headers);
        let from = media.leg_of(call_id, &tag, true);
        if let (true, false, Some(from)) = (carries_sdp(method), response.body.is_empty(), from) {
            let status = response.status;
            Self::anchor_response_sdp(
                media,
                now,
                (call_id, status),
                from,
                &response.headers,
                &mut response.body,
            );
        }
        // The final answer to an in-dialog offer commits or undoes it.
        if let (true, true, Some(from)) = (response.status.is_final(), offers(method), from) {
            media.offer_answered(now, call_id, from, response.status.is_success());
        }
        if answered {
            media.answered(now, call_id);
        }
    }

    fn anchor_response_sdp(
        media: &mut MediaSessions,
        now: Instant,
        (call_id, status): (&str, StatusCode),
        from: Leg,
        headers: &Headers,
        body: &mut Bytes,
    ) {
        match body_of(headers, body) {
            Body::Sdp(sdp) => match media.sdp_from(now, call_id, from, &sdp, SdpRole::Response) {
                Ok(Some(rewritten)) => *body = rewritten,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(call_id, %error, %status, "SDP in a response not anchored; relayed as it came");
                    media.note_unanchored();
                }
            },
            Body::Other(what) => {
                tracing::warn!(
                    call_id,
                    what,
                    "body of a response not anchored; relayed as it came"
                );
                media.note_unanchored();
            }
            Body::None => {}
        }
    }

    /// An in-dialog request of an anchored call: its SDP rewritten for the
    /// leg it goes to; a BYE releases the media. `Err`: refuse it with 488
    /// and this warning (never for ACK, which is then relayed as it came).
    pub(super) fn anchor_in_dialog(
        &mut self,
        now: Instant,
        request: &mut Request,
    ) -> Result<(), String> {
        let Some(media) = &mut self.media else {
            return Ok(());
        };
        if media.is_empty() {
            return Ok(());
        }
        let Some(call_id) = request.headers.call_id() else {
            return Ok(());
        };
        if !media.contains(call_id) {
            return Ok(());
        }
        if request.method == Method::Bye {
            media.release(now, call_id, MediaEnd::Bye);
            return Ok(());
        }
        if !carries_sdp(&request.method) || request.body.is_empty() {
            return Ok(());
        }
        let tag = from_tag(&request.headers);
        let from = media.leg_of(call_id, &tag, false).unwrap_or(Leg::A);
        let role = if offers(&request.method) {
            SdpRole::Offer
        } else {
            SdpRole::Other
        };
        let refused = match body_of(&request.headers, &request.body) {
            Body::None => return Ok(()),
            Body::Sdp(body) => match media.sdp_from(now, call_id, from, &body, role) {
                Ok(Some(rewritten)) => {
                    request.body = rewritten;
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(error) => format!("media is anchored here: {error}"),
            },
            Body::Other(what) => format!("media is anchored here: {what} cannot be anchored"),
        };
        if request.method == Method::Ack {
            tracing::warn!(call_id, reason = %refused, "SDP in an ACK not anchored; relayed as it came");
            media.note_unanchored();
            return Ok(());
        }
        media.note_rejected();
        Err(refused)
    }

    /// Publishes a media timeout on the host's stream (the driver does).
    pub(crate) fn media_timeout_event(timeout: &MediaTimeout) -> Event {
        let (name, carrier) = timeout
            .trunk
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        Event {
            at: timeout.at,
            target: Target::new(&carrier, &name),
            kind: EventKind::MediaTimeout {
                call_id: timeout.call_id.clone(),
                cause: "no RTP from either leg; media released, signalling left alone".into(),
            },
        }
    }
}

/// The From tag (empty if none: an RFC 2543 caller).
fn from_tag(headers: &Headers) -> Bytes {
    headers
        .from()
        .and_then(|from| from.tag().map(|tag| Bytes::copy_from_slice(tag.as_bytes())))
        .unwrap_or_default()
}

/// Methods whose messages may carry an offer or answer (RFC 3261 §13,
/// RFC 3262 PRACK, RFC 3311 UPDATE).
fn carries_sdp(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Ack) || matches!(method.as_str(), "UPDATE" | "PRACK")
}

/// Requests whose SDP is an offer that a non-2xx final answer refuses
/// (RFC 3261 §14, RFC 3311).
fn offers(method: &Method) -> bool {
    *method == Method::Invite || method.as_str() == "UPDATE"
}

/// What a body is: SDP by its Content-Type (`application/sdp`), or with no
/// Content-Type a body starting `v=`.
fn body_of(headers: &Headers, body: &Bytes) -> Body {
    if body.is_empty() {
        return Body::None;
    }
    let Some(kind) = headers.value(HeaderName::ContentType) else {
        return if body.starts_with(b"v=") {
            Body::Sdp(body.clone())
        } else {
            Body::Other("a body without Content-Type".into())
        };
    };
    let media_type = kind
        .split(|&b| b == b';')
        .next()
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media_type == "application/sdp" {
        Body::Sdp(body.clone())
    } else {
        Body::Other(format!("a {media_type} body"))
    }
}
