//! Building messages: responses to a request (§8.2.6), new requests (§8.1.1),
//! CANCEL (§9.1) and the ACK for a non-2xx final response (§17.1.1.3).

use bytes::Bytes;

use super::headers::{Header, HeaderName};
use super::method::{Method, StatusCode};
use super::via::Branch;
use super::{Request, Response, Uri};

/// A request could not be derived from another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The source request lacks a header the new message copies.
    #[error("the request has no {0} header")]
    Missing(&'static str),
    /// CANCEL and ACK are built only for INVITE.
    #[error("{0} is not an INVITE")]
    NotInvite(Method),
    /// The ACK built here is for a non-2xx final response only.
    #[error("status {0} does not take a transaction ACK (only 300-699 do)")]
    NotNon2xxFinal(StatusCode),
}

/// A response to `request` (§8.2.6.2): Via (all, in order), From, To, Call-ID and
/// CSeq copied; `to_tag` added to To unless To already has a tag or the status
/// is 100; Record-Route copied for 101–299 answers to INVITE (§12.1.1). No body.
pub fn response_to(request: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    let mut response = Response::new(status);
    let copy_record_route =
        request.method == Method::Invite && status.as_u16() > 100 && status.as_u16() < 300;
    for h in &request.headers {
        match h.kind() {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                response.headers.push(h.clone());
            }
            HeaderName::RecordRoute if copy_record_route => response.headers.push(h.clone()),
            HeaderName::To => {
                let tagged = request.headers.to().is_some_and(|to| to.tag().is_some());
                match to_tag {
                    Some(tag) if !tagged && status != StatusCode::TRYING => {
                        let mut value = Vec::with_capacity(h.value().len() + tag.len() + 5);
                        value.extend_from_slice(h.value());
                        value.extend_from_slice(b";tag=");
                        value.extend_from_slice(tag.as_bytes());
                        response
                            .headers
                            .push(Header::new(HeaderName::To, Bytes::from(value)));
                    }
                    _ => response.headers.push(h.clone()),
                }
            }
            _ => {}
        }
    }
    response.headers.push(Header::new(
        HeaderName::ContentLength,
        Bytes::from_static(b"0"),
    ));
    response
}

/// The parts of a new out-of-dialog request (§8.1.1): OPTIONS probes,
/// REGISTER, INVITE.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// The From address, without tag.
    pub from: Uri,
    /// The From tag.
    pub from_tag: String,
    /// The To address (no tag: the request is outside a dialog).
    pub to: Uri,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The transport named in Via (`UDP`, `TCP`, `TLS`).
    pub transport: String,
    /// `host[:port]` where responses should come (Via sent-by).
    pub sent_by: String,
    /// The Via branch.
    pub branch: Branch,
    /// Max-Forwards (70 by §8.1.1.6).
    pub max_forwards: u8,
    /// The Contact address, if the request has one.
    pub contact: Option<Uri>,
}

impl NewRequest {
    /// The request: Via (with `rport`, RFC 3581), Max-Forwards, To, From, Call-ID,
    /// CSeq, Contact if given, Content-Length: 0.
    pub fn build(&self) -> Request {
        let mut request = Request::new(self.method.clone(), self.uri.clone());
        let h = &mut request.headers;
        h.push(Header::new(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {};branch={};rport",
                self.transport, self.sent_by, self.branch
            ),
        ));
        h.push(Header::new(
            HeaderName::MaxForwards,
            self.max_forwards.to_string(),
        ));
        h.push(Header::new(HeaderName::To, format!("<{}>", self.to)));
        h.push(Header::new(
            HeaderName::From,
            format!("<{}>;tag={}", self.from, self.from_tag),
        ));
        h.push(Header::new(HeaderName::CallId, self.call_id.clone()));
        h.push(Header::new(
            HeaderName::CSeq,
            format!("{} {}", self.cseq, self.method),
        ));
        if let Some(contact) = &self.contact {
            h.push(Header::new(HeaderName::Contact, format!("<{contact}>")));
        }
        h.push(Header::new(
            HeaderName::ContentLength,
            Bytes::from_static(b"0"),
        ));
        request
    }
}

fn copy(
    from: &Request,
    to: &mut Request,
    kind: HeaderName,
    name: &'static str,
) -> Result<(), BuildError> {
    let header = from.headers.get(kind).ok_or(BuildError::Missing(name))?;
    to.headers.push(header.clone());
    Ok(())
}

fn top_via_header(invite: &Request) -> Result<Header, BuildError> {
    let via = invite
        .headers
        .get(HeaderName::Via)
        .ok_or(BuildError::Missing("Via"))?;
    // A line may hold several hops: keep only the first.
    let mut top = None;
    let _ = super::via::parse_list(via.value(), |range, _| {
        if top.is_none() {
            top = Some(range);
        }
    });
    let (a, b) = top.ok_or(BuildError::Missing("Via"))?;
    Ok(Header::new(HeaderName::Via, via.value().slice(a..b)))
}

fn cseq_line(invite: &Request, method: &Method) -> Result<Header, BuildError> {
    let cseq = invite.headers.cseq().ok_or(BuildError::Missing("CSeq"))?;
    Ok(Header::new(
        HeaderName::CSeq,
        format!("{} {}", cseq.seq, method),
    ))
}

/// CANCEL for a pending INVITE (§9.1): same Request-URI, Call-ID, To, From and
/// CSeq number, a single Via equal to the INVITE's top Via (same branch), the
/// INVITE's Route set.
pub fn cancel_for(invite: &Request) -> Result<Request, BuildError> {
    if invite.method != Method::Invite {
        return Err(BuildError::NotInvite(invite.method.clone()));
    }
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    cancel.headers.push(top_via_header(invite)?);
    cancel.headers.push(Header::new(
        HeaderName::MaxForwards,
        Bytes::from_static(b"70"),
    ));
    for route in invite.headers.get_all(HeaderName::Route) {
        cancel.headers.push(route.clone());
    }
    copy(invite, &mut cancel, HeaderName::To, "To")?;
    copy(invite, &mut cancel, HeaderName::From, "From")?;
    copy(invite, &mut cancel, HeaderName::CallId, "Call-ID")?;
    cancel.headers.push(cseq_line(invite, &Method::Cancel)?);
    cancel.headers.push(Header::new(
        HeaderName::ContentLength,
        Bytes::from_static(b"0"),
    ));
    Ok(cancel)
}

/// The ACK a client INVITE transaction sends for a 300–699 response
/// (§17.1.1.3): the INVITE's Request-URI, Call-ID, From, CSeq number and Route
/// set, the response's To (with its tag), one Via equal to the INVITE's top Via.
pub fn ack_for(invite: &Request, response: &Response) -> Result<Request, BuildError> {
    if invite.method != Method::Invite {
        return Err(BuildError::NotInvite(invite.method.clone()));
    }
    if response.status.as_u16() < 300 {
        return Err(BuildError::NotNon2xxFinal(response.status));
    }
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    ack.headers.push(top_via_header(invite)?);
    ack.headers.push(Header::new(
        HeaderName::MaxForwards,
        Bytes::from_static(b"70"),
    ));
    for route in invite.headers.get_all(HeaderName::Route) {
        ack.headers.push(route.clone());
    }
    let to = response
        .headers
        .get(HeaderName::To)
        .ok_or(BuildError::Missing("To"))?;
    ack.headers.push(to.clone());
    copy(invite, &mut ack, HeaderName::From, "From")?;
    copy(invite, &mut ack, HeaderName::CallId, "Call-ID")?;
    ack.headers.push(cseq_line(invite, &Method::Ack)?);
    ack.headers.push(Header::new(
        HeaderName::ContentLength,
        Bytes::from_static(b"0"),
    ));
    Ok(ack)
}
