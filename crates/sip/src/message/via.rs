//! The Via header (RFC 3261 §20.42) and branch identifiers (§8.1.1.7).

use std::fmt;

use bytes::Bytes;
use hotsite_core::Rng;

use super::grammar::{ascii, Cursor};
use super::uri::Params;

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host:port;branch=z9hG4bK…;received=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The protocol name and version, `SIP/2.0` (white space removed).
    pub protocol: Bytes,
    /// The transport: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, … as written.
    pub transport: Bytes,
    /// Where the sender wants responses: host name or address.
    pub host: Bytes,
    /// The port of `sent-by`, if given.
    pub port: Option<u16>,
    /// The `branch` parameter.
    pub branch: Option<Bytes>,
    /// Every parameter, from the first `;`.
    pub params: Params,
}

impl Via {
    /// The branch as text.
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref().map(ascii)
    }

    /// Whether the branch starts with the RFC 3261 magic cookie, so that it can
    /// be used alone to match transactions (§17.1.3, §17.2.3).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch
            .as_ref()
            .is_some_and(|b| b.starts_with(BRANCH_MAGIC_COOKIE.as_bytes()))
    }

    /// The transport as text.
    pub fn transport(&self) -> &str {
        ascii(&self.transport)
    }

    /// The host of `sent-by` as text.
    pub fn host(&self) -> &str {
        ascii(&self.host)
    }

    /// `sent-by` as `host` or `host:port`.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host()),
            None => self.host().to_owned(),
        }
    }

    /// The `received` parameter (§18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten().map(ascii)
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| ascii(v).parse().ok()))
    }
}

/// Where the parts of one Via hop are in its header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViaRanges {
    name: (usize, usize),
    version: (usize, usize),
    transport: (usize, usize),
    host: (usize, usize),
    port: Option<u16>,
    branch: Option<(usize, usize)>,
    params: (usize, usize),
}

impl ViaRanges {
    pub(crate) fn build(&self, value: &Bytes) -> Via {
        let (name, version) = (
            &value[self.name.0..self.name.1],
            &value[self.version.0..self.version.1],
        );
        let protocol = if name == b"SIP" && version == b"2.0" {
            Bytes::from_static(b"SIP/2.0")
        } else {
            let mut p = Vec::with_capacity(name.len() + version.len() + 1);
            p.extend_from_slice(name);
            p.push(b'/');
            p.extend_from_slice(version);
            Bytes::from(p)
        };
        let slice = |(a, b): (usize, usize)| value.slice(a..b);
        Via {
            protocol,
            transport: slice(self.transport),
            host: slice(self.host),
            port: self.port,
            branch: self.branch.map(slice),
            params: Params(slice(self.params)),
        }
    }
}

/// Parses a Via header value, which may hold several comma-separated hops.
/// Calls `f` with each hop's byte range in `value` and its parts.
pub(crate) fn parse_list(
    value: &[u8],
    mut f: impl FnMut((usize, usize), ViaRanges),
) -> Result<(), &'static str> {
    let mut c = Cursor::new(value);
    loop {
        c.skip_lws();
        let start = c.pos;
        let via = parse_one(&mut c)?;
        f((start, c.pos), via);
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err("expected ',' or ';' after a Via hop");
        }
    }
}

/// `sent-protocol LWS sent-by *( SEMI via-params )`.
fn parse_one(c: &mut Cursor<'_>) -> Result<ViaRanges, &'static str> {
    let name = c.token().ok_or("missing protocol name")?;
    if !c.separator(b'/') {
        return Err("expected '/' after the protocol name");
    }
    let version = c.token().ok_or("missing protocol version")?;
    if !c.separator(b'/') {
        return Err("expected '/' after the protocol version");
    }
    let transport = c.token().ok_or("missing transport")?;
    if !c.skip_lws() {
        return Err("expected white space before sent-by");
    }
    let host = c.host()?;
    let port = if c.separator(b':') {
        Some(c.port()?)
    } else {
        None
    };
    let mut branch = None;
    let params = c.params(|name, v| {
        if name.eq_ignore_ascii_case(b"branch") {
            branch = v;
        }
    })?;
    Ok(ViaRanges {
        name,
        version,
        transport,
        host,
        port,
        branch,
        params,
    })
}

/// A Via branch: the magic cookie plus random hex.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Branch(String);

impl Branch {
    /// A new branch with 96 random bits after the magic cookie. The generator
    /// must be seeded differently in every process (the driver seeds it from
    /// its clock and process id): branches must be unique in space and time.
    pub fn generate(rng: &mut Rng) -> Branch {
        let a = rng.next_u64();
        let b = rng.next_u64() as u32;
        Branch(format!("{BRANCH_MAGIC_COOKIE}{a:016x}{b:08x}"))
    }

    /// Wraps an existing branch value.
    pub fn from_string(branch: String) -> Branch {
        Branch(branch)
    }

    /// The branch text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Branch({})", self.0)
    }
}
