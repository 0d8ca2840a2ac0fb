//! SDP (RFC 4566) offers and answers (RFC 3264) for one audio stream:
//! PCMU, PCMA and telephone-event (RFC 4733), and the stream's direction
//! (hold is `sendonly`/`inactive`, SPEC R5). Pure; the lab's own parser, so
//! that it checks hotsite's rewriting instead of agreeing with it.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The payload type telephone-event gets in the lab's offers.
pub(crate) const TELEPHONE_EVENT_PT: u8 = 101;

/// The direction of a stream (RFC 3264 §5.1), from the writer's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both ways (the default when none is written).
    #[default]
    Sendrecv,
    /// The writer sends only: it puts the other side on hold.
    Sendonly,
    /// The writer receives only.
    Recvonly,
    /// Neither way.
    Inactive,
}

impl Direction {
    /// The answer's direction to an offer with this one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::Sendrecv => Direction::Sendrecv,
            Direction::Sendonly => Direction::Recvonly,
            Direction::Recvonly => Direction::Sendonly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the writer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::Sendrecv | Direction::Sendonly)
    }

    /// The attribute's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sendrecv => "sendrecv",
            Direction::Sendonly => "sendonly",
            Direction::Recvonly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// A G.711 codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// µ-law, static payload type 0.
    #[serde(rename = "PCMU")]
    Pcmu,
    /// A-law, static payload type 8.
    #[serde(rename = "PCMA")]
    Pcma,
}

impl Codec {
    /// Its static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Its encoding name in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec of a static payload type.
    pub fn from_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// What one SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionDescription {
    /// Where to send RTP: the connection address and the media port; `None`
    /// for an old-style hold (`c=IN IP4 0.0.0.0`).
    pub(crate) rtp: Option<SocketAddr>,
    /// The formats of the `m=audio` line, in order of preference.
    pub(crate) formats: Vec<u8>,
    /// `a=rtpmap` entries: payload type → encoding name (upper case) and rate.
    pub(crate) rtpmap: Vec<(u8, String, u32)>,
    pub(crate) direction: Direction,
}

/// Why an SDP body cannot be used (the INVITE gets `488 Not Acceptable Here`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No body at all.
    #[error("no SDP body")]
    Missing,
    /// A line SDP does not allow, or a value that does not parse.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No usable `m=audio` line.
    #[error("no audio stream: {0}")]
    NoAudio(&'static str),
    /// Neither PCMU nor PCMA is offered.
    #[error("no common codec: PCMU or PCMA is needed, offered {0:?}")]
    NoCommonCodec(Vec<u8>),
}

/// The outcome of an offer/answer: what each side sends and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) codec: Codec,
    /// The telephone-event payload type, if both sides have one.
    pub(crate) telephone_event: Option<u8>,
    /// Where the other side wants RTP (`None`: on hold the old way).
    pub(crate) remote: Option<SocketAddr>,
    /// The other side's direction as it wrote it.
    pub(crate) remote_direction: Direction,
}

impl SessionDescription {
    /// Parses one SDP body with exactly one `m=` line, which is audio over
    /// RTP/AVP.
    pub(crate) fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(SdpError::Missing);
        }
        let text =
            std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".to_owned()))?;
        let mut version_seen = false;
        let mut session_ip: Option<IpAddr> = None;
        let mut media_ip: Option<IpAddr> = None;
        let mut media: Option<(u16, Vec<u8>)> = None;
        let mut media_lines = 0;
        let mut rtpmap = Vec::new();
        let mut session_direction = None;
        let mut media_direction = None;
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            let (kind, value) = line
                .split_once('=')
                .filter(|(kind, _)| kind.len() == 1)
                .ok_or_else(|| SdpError::Malformed(format!("line {line:?}")))?;
            let in_media = media_lines > 0;
            match kind {
                "v" => version_seen = value == "0",
                "c" => {
                    let ip = parse_connection(value)?;
                    if in_media {
                        media_ip = Some(ip);
                    } else {
                        session_ip = Some(ip);
                    }
                }
                "m" => {
                    media_lines += 1;
                    media = Some(parse_media(value)?);
                }
                "a" => {
                    let direction = match value {
                        "sendrecv" => Some(Direction::Sendrecv),
                        "sendonly" => Some(Direction::Sendonly),
                        "recvonly" => Some(Direction::Recvonly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    if let Some(direction) = direction {
                        if in_media {
                            media_direction = Some(direction);
                        } else {
                            session_direction = Some(direction);
                        }
                    } else if let Some(map) = value.strip_prefix("rtpmap:") {
                        rtpmap.push(parse_rtpmap(map)?);
                    }
                }
                _ => {}
            }
        }
        if !version_seen {
            return Err(SdpError::Malformed("no v=0 line".to_owned()));
        }
        if media_lines > 1 {
            return Err(SdpError::NoAudio("more than one m= line"));
        }
        let (port, formats) = media.ok_or(SdpError::NoAudio("no m= line"))?;
        if port == 0 {
            return Err(SdpError::NoAudio("the audio stream is rejected (port 0)"));
        }
        let ip = media_ip
            .or(session_ip)
            .ok_or_else(|| SdpError::Malformed("no c= line".to_owned()))?;
        Ok(SessionDescription {
            rtp: (!ip.is_unspecified()).then_some(SocketAddr::new(ip, port)),
            formats,
            rtpmap,
            direction: media_direction.or(session_direction).unwrap_or_default(),
        })
    }

    /// The codec of a format: a static type, or a dynamic one mapped to PCMU
    /// or PCMA at 8 kHz.
    fn codec_of(&self, format: u8) -> Option<Codec> {
        match self.rtpmap.iter().find(|(pt, _, _)| *pt == format) {
            Some((_, name, 8_000)) if name == "PCMU" => Some(Codec::Pcmu),
            Some((_, name, 8_000)) if name == "PCMA" => Some(Codec::Pcma),
            Some(_) => None,
            None => Codec::from_payload_type(format),
        }
    }

    /// The telephone-event payload type at 8 kHz, if listed.
    fn telephone_event(&self) -> Option<u8> {
        self.formats.iter().copied().find(|format| {
            self.rtpmap
                .iter()
                .any(|(pt, name, rate)| pt == format && name == "TELEPHONE-EVENT" && *rate == 8_000)
        })
    }

    /// The answerer's choice for this offer: PCMU if offered, else PCMA.
    pub(crate) fn negotiate_as_answerer(&self) -> Result<Negotiated, SdpError> {
        let codecs: Vec<Codec> = self
            .formats
            .iter()
            .filter_map(|&format| self.codec_of(format))
            .collect();
        let codec = [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|codec| codecs.contains(codec))
            .ok_or_else(|| SdpError::NoCommonCodec(self.formats.clone()))?;
        Ok(Negotiated {
            codec,
            telephone_event: self.telephone_event(),
            remote: self.rtp,
            remote_direction: self.direction,
        })
    }

    /// The offerer's reading of an answer: the first G.711 format it lists.
    pub(crate) fn negotiate_as_offerer(&self) -> Result<Negotiated, SdpError> {
        let codec = self
            .formats
            .iter()
            .find_map(|&format| self.codec_of(format))
            .ok_or_else(|| SdpError::NoCommonCodec(self.formats.clone()))?;
        Ok(Negotiated {
            codec,
            telephone_event: self.telephone_event(),
            remote: self.rtp,
            remote_direction: self.direction,
        })
    }
}

/// What an SDP the lab writes says.
pub(crate) struct Description<'a> {
    /// The writer's user name in `o=`.
    pub(crate) user: &'a str,
    pub(crate) session_id: u64,
    /// Goes up by one with every new description of the session.
    pub(crate) version: u64,
    /// Where the writer receives RTP.
    pub(crate) rtp: SocketAddr,
    pub(crate) codecs: &'a [Codec],
    pub(crate) telephone_event: Option<u8>,
    pub(crate) direction: Direction,
}

impl Description<'_> {
    /// The SDP text.
    pub(crate) fn to_bytes(&self) -> Bytes {
        let ip = self.rtp.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut formats: Vec<String> = self
            .codecs
            .iter()
            .map(|c| c.payload_type().to_string())
            .collect();
        formats.extend(self.telephone_event.map(|pt| pt.to_string()));
        let mut text = format!(
            "v=0\r\no={} {} {} IN {family} {ip}\r\ns=hotsite lab\r\nc=IN {family} {ip}\r\n\
             t=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            self.user,
            self.session_id,
            self.version,
            self.rtp.port(),
            formats.join(" ")
        );
        for codec in self.codecs {
            text.push_str(&format!(
                "a=rtpmap:{} {}/8000\r\n",
                codec.payload_type(),
                codec.name()
            ));
        }
        if let Some(pt) = self.telephone_event {
            text.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            ));
        }
        text.push_str(&format!("a=ptime:20\r\na={}\r\n", self.direction.as_str()));
        Bytes::from(text)
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split_whitespace();
    let (Some("IN"), Some(family), Some(address)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SdpError::Malformed(format!("c={value}")));
    };
    // Multicast TTL and count suffixes are not for a call.
    let ip: IpAddr = address
        .parse()
        .map_err(|_| SdpError::Malformed(format!("c= address {address:?}")))?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(SdpError::Malformed(format!("c={value}"))),
    }
}

fn parse_media(value: &str) -> Result<(u16, Vec<u8>), SdpError> {
    let mut parts = value.split_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpError::Malformed(format!("m={value}")));
    };
    if kind != "audio" {
        return Err(SdpError::NoAudio("the m= line is not audio"));
    }
    if proto != "RTP/AVP" {
        return Err(SdpError::NoAudio("the transport is not RTP/AVP"));
    }
    // `port/count` is for layered multicast; take the port.
    let port: u16 = port
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| SdpError::Malformed(format!("m= port {port:?}")))?;
    let formats = parts
        .map(|f| {
            f.parse::<u8>()
                .ok()
                .filter(|pt| *pt < 128)
                .ok_or_else(|| SdpError::Malformed(format!("m= format {f:?}")))
        })
        .collect::<Result<Vec<u8>, SdpError>>()?;
    Ok((port, formats))
}

fn parse_rtpmap(value: &str) -> Result<(u8, String, u32), SdpError> {
    let malformed = || SdpError::Malformed(format!("a=rtpmap:{value}"));
    let (pt, encoding) = value.split_once(' ').ok_or_else(malformed)?;
    let pt: u8 = pt.parse().map_err(|_| malformed())?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().ok_or_else(malformed)?.to_ascii_uppercase();
    let rate: u32 = parts
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(malformed)?;
    Ok((pt, name, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendonly\r\n";

    #[test]
    fn an_offer_is_read_and_answered_with_pcmu_and_the_mirrored_direction() {
        let offer = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(offer.rtp, Some("10.0.0.1:4000".parse().unwrap()));
        assert_eq!(offer.formats, vec![8, 0, 101]);
        assert_eq!(offer.direction, Direction::Sendonly);
        let chosen = offer.negotiate_as_answerer().unwrap();
        assert_eq!(chosen.codec, Codec::Pcmu);
        assert_eq!(chosen.telephone_event, Some(101));
        assert_eq!(chosen.remote_direction.answer(), Direction::Recvonly);
    }

    #[test]
    fn an_answer_reads_back() {
        let answer = Description {
            user: "lab",
            session_id: 7,
            version: 2,
            rtp: "127.0.0.1:5004".parse().unwrap(),
            codecs: &[Codec::Pcma],
            telephone_event: Some(96),
            direction: Direction::Recvonly,
        }
        .to_bytes();
        let parsed = SessionDescription::parse(&answer).unwrap();
        assert_eq!(parsed.rtp, Some("127.0.0.1:5004".parse().unwrap()));
        let negotiated = parsed.negotiate_as_offerer().unwrap();
        assert_eq!(negotiated.codec, Codec::Pcma);
        assert_eq!(negotiated.telephone_event, Some(96));
        assert_eq!(negotiated.remote_direction, Direction::Recvonly);
    }

    #[test]
    fn media_level_connection_and_direction_win() {
        let text = "v=0\r\nc=IN IP4 10.0.0.1\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n\
                    c=IN IP6 ::2\r\na=sendrecv\r\n";
        let sdp = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.rtp, Some("[::2]:4000".parse().unwrap()));
        assert_eq!(sdp.direction, Direction::Sendrecv);
    }

    #[test]
    fn an_old_style_hold_has_no_address() {
        let text = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            SessionDescription::parse(text.as_bytes()).unwrap().rtp,
            None
        );
    }

    #[test]
    fn unusable_offers_are_refused() {
        let refuse = |text: &str| {
            SessionDescription::parse(text.as_bytes()).and_then(|sdp| sdp.negotiate_as_answerer())
        };
        assert_eq!(refuse(""), Err(SdpError::Missing));
        assert!(matches!(refuse("hello"), Err(SdpError::Malformed(_))));
        assert!(matches!(
            refuse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            refuse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n"),
            Err(SdpError::NoAudio(_))
        ));
        assert!(matches!(
            refuse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n"),
            Err(SdpError::NoAudio(_))
        ));
        assert_eq!(
            refuse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 9\r\n"),
            Err(SdpError::NoCommonCodec(vec![18, 9]))
        );
        assert!(matches!(
            refuse("v=0\r\nc=IN IP4 nowhere\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
    }
}
