//! Stateless forwarding: in-dialog requests by loose routing (§16.4, §16.11,
//! §16.12), and responses that match no transaction (§16.7 with RFC 6026:
//! 2xx to INVITE and the answers to in-dialog requests).

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use hotsite_sip::message::{Method, Request, Response, StatusCode, Via};
use hotsite_sip::proxy::{self as wire, Peer, Transport};

use super::Proxy;

impl Proxy {
    /// A request inside a dialog (To tag) that matched no transaction.
    pub(super) fn forward_in_dialog(
        &mut self,
        now: Instant,
        from: Peer,
        mut request: Request,
        via: Via,
    ) {
        let is_ack = request.method == Method::Ack;
        // Ours, and a second entry of ours if the dialog was double
        // record-routed (RFC 5658: the two sides use different transports).
        let routed = self.us.pop_routes(&mut request.headers) > 0;
        if !routed {
            // Not a dialog we record-routed: nothing to forward it by.
            if is_ack {
                tracing::debug!(%from, "ACK without a Route to us dropped");
                self.stats.dropped += 1;
            } else {
                self.reply(
                    from,
                    &request,
                    &via,
                    StatusCode::CALL_DOES_NOT_EXIST,
                    Some("in-dialog request without a Route naming this proxy"),
                );
            }
            return;
        }
        let next = match request.headers.top_route() {
            Some(route) => wire::uri_addr(&route.uri),
            None => wire::uri_addr(&request.uri),
        };
        let dest = match next {
            Ok((dest, _)) if dest == self.us.public || dest == self.us.listen => {
                Err("the next hop is this proxy")
            }
            // The URI's transport if it names one; else a trunk's own
            // transport for a trunk's address; else UDP (RFC 3263 §4.1 for an
            // IP literal without a transport parameter).
            Ok((addr, transport)) => Ok(Peer {
                transport: transport.unwrap_or_else(|| {
                    self.per_trunk
                        .iter()
                        .find(|trunk| trunk.peer.addr == addr)
                        .map_or(Transport::Udp, |trunk| trunk.peer.transport)
                }),
                addr,
            }),
            Err(reason) => Err(reason),
        };
        let dest = match dest {
            Ok(dest) => dest,
            Err(reason) => {
                tracing::debug!(%from, method = %request.method, reason, "in-dialog request not forwarded");
                if is_ack {
                    self.stats.dropped += 1;
                } else {
                    self.reply(from, &request, &via, StatusCode::NOT_FOUND, Some(reason));
                }
                return;
            }
        };
        if request.headers.decrement_max_forwards().is_err() {
            if is_ack {
                self.stats.dropped += 1;
            } else {
                self.reply(from, &request, &via, StatusCode::TOO_MANY_HOPS, None);
            }
            return;
        }
        // An anchored call's SDP goes rewritten, or not at all (`media.rs`).
        if let Err(warning) = self.anchor_in_dialog(now, &mut request) {
            let status = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
            self.reply(from, &request, &via, status, Some(&warning));
            return;
        }
        let branch = wire::stateless_branch(&request, &via);
        wire::stamp_via(&mut request.headers, &via, from);
        let prefix = self.via_prefix(dest.transport);
        let mut top = BytesMut::with_capacity(prefix.len() + branch.len());
        top.put_slice(prefix);
        top.put_slice(&branch);
        request.headers.push_via(top.freeze());
        self.stats.in_dialog_forwarded += 1;
        self.send(dest, request.to_bytes());
    }

    /// A response that matched no transaction: our Via is popped and the
    /// response goes where the next Via says. Late non-2xx answers on one of
    /// our stateful INVITE branches are dropped (their transaction is over;
    /// relaying them would confuse the caller).
    pub(super) fn relay_response(
        &mut self,
        now: Instant,
        mut response: Response,
        via: &Via,
        method: &Method,
    ) {
        if !self.us.is_via(via) {
            tracing::debug!(status = %response.status, "response whose top Via is not ours dropped");
            self.stats.dropped += 1;
            return;
        }
        let stateful = via
            .branch
            .as_ref()
            .is_some_and(|b| wire::is_stateful_branch(b));
        if stateful && *method == Method::Invite && !response.status.is_success() {
            self.stats.dropped += 1;
            return;
        }
        response.headers.pop_via();
        let Some(next) = response.headers.top_via() else {
            // A response to a request we originated and no longer track.
            self.stats.dropped += 1;
            return;
        };
        let Some(dest) = wire::response_addr(&next) else {
            tracing::debug!(via = %next.sent_by(), "response not relayed: the next Via names no IP or an unknown transport");
            self.stats.dropped += 1;
            return;
        };
        self.anchor_response(now, &mut response, method);
        self.stats.responses_relayed += 1;
        self.send(dest, response.to_bytes());
    }
}
