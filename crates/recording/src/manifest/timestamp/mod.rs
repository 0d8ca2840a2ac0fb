//! RFC 3161 timestamps on a signed manifest (SPEC R3, optional): a
//! time-stamping authority (TSA) countersigns the SHA-256 of the signed
//! manifest's canonical bytes, so that the manifest is shown to have existed
//! by the TSA's time.
//!
//! What is done here:
//! - the request, a DER `TimeStampReq` (version 1, SHA-256 `messageImprint`,
//!   a 64-bit random nonce, `certReq` true) written by hand, POSTed as
//!   `application/timestamp-query`;
//! - the reply: its status must be granted (or granted with modifications),
//!   and the token's `TSTInfo` must carry the request's digest and nonce;
//! - offline (`hotsite recording verify`): the token in the manifest is parsed
//!   again and its `messageImprint` (SHA-256, the manifest's digest), nonce and
//!   time are checked against the manifest's `timestamp` block.
//!
//! What is NOT done: the token's CMS signature, the TSA's certificate and its
//! chain to a trusted root, the `timeStamping` extended key usage, the
//! ESSCertID binding and the TSA policy are not validated. Anyone can make a
//! token that passes the checks here; only a CMS verification proves a TSA
//! made it. Do that with openssl, e.g. after extracting the token:
//!
//! ```text
//! jq -r .timestamp.token manifest.json | base64 -d > token.der
//! openssl ts -verify -token_in -in token.der -digest <manifest digest hex> \
//!     -CAfile tsa-chain.pem
//! ```
//!
//! where the digest is what `hotsite recording verify` prints for the
//! timestamp.

mod der;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use der::DerError;
use der::{
    integer_to_u64, tlv, unsigned_integer, write_tlv, Reader, BOOLEAN, CONTEXT_0, GENERALIZED_TIME,
    INTEGER, NULL, OCTET_STRING, OID, SEQUENCE, SET, UTF8_STRING,
};

use super::hex;

/// The manifest's `timestamp` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamp {
    /// Where the token came from.
    pub tsa_url: String,
    /// The imprint's hash: always "SHA-256".
    pub hash_alg: String,
    /// The request's nonce, 16 hex digits.
    pub nonce: String,
    /// The token's genTime (GeneralizedTime as the TSA wrote it, e.g.
    /// `20260412093011Z`).
    pub gen_time: String,
    /// The DER `TimeStampToken` (a CMS ContentInfo), base64.
    pub token: String,
}

/// What the token's `TSTInfo` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    /// The TSA's policy, dotted (e.g. `1.3.6.1.4.1.99999.1`).
    pub policy: String,
    /// The `messageImprint`'s digest.
    pub hashed_message: Vec<u8>,
    /// The serial number's content octets, hex.
    pub serial: String,
    pub gen_time: String,
    pub nonce: Option<u64>,
}

/// Why a timestamp could not be had or does not check.
#[derive(Debug, Error)]
pub enum TimestampError {
    #[error("token: {0}")]
    Der(#[from] DerError),
    #[error("TSA refused the request: status {status}{}", if text.is_empty() { String::new() } else { format!(" ({text})") })]
    Rejected { status: u64, text: String },
    #[error("token is not CMS SignedData")]
    NotSignedData,
    #[error("token does not hold a TSTInfo")]
    NotTstInfo,
    #[error("TSA reply has no token although granted")]
    NoToken,
    #[error("token's messageImprint is not SHA-256")]
    HashAlgorithm,
    #[error("token's messageImprint differs from the manifest's digest (token {token}, manifest {manifest})")]
    ImprintDiffers { token: String, manifest: String },
    #[error("token's nonce differs (expected {expected}, token {found})")]
    NonceDiffers { expected: String, found: String },
    #[error("block's {field} differs from its token ({block} vs {token})")]
    BlockDiffers {
        field: &'static str,
        block: String,
        token: String,
    },
    #[error("block: {0}")]
    Block(String),
    #[error("TSA request to {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("TSA at {url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("TSA at {url} answered more than {MAX_RESPONSE} bytes")]
    ResponseTooLarge { url: String },
}

/// The largest TSA reply read (a token with a certificate chain is a few KiB).
pub const MAX_RESPONSE: usize = 1 << 20;
/// How long a TSA request may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// id-sha256, 2.16.840.1.101.3.4.2.1.
const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// id-signedData, 1.2.840.113549.1.7.2.
const SIGNED_DATA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// id-ct-TSTInfo, 1.2.840.113549.1.9.16.1.4.
const TST_INFO_OID: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];

/// A DER `TimeStampReq` (RFC 3161 §2.4.1) for a SHA-256 `digest`: version 1,
/// no policy, `nonce` if given, `certReq` true, no extensions.
pub fn request_der(digest: &[u8; 32], nonce: Option<u64>) -> Vec<u8> {
    let mut algorithm = tlv(OID, SHA256_OID);
    // openssl and most TSAs write the NULL parameters of SHA-256.
    write_tlv(&mut algorithm, NULL, &[]);
    let mut imprint = tlv(SEQUENCE, &algorithm);
    write_tlv(&mut imprint, OCTET_STRING, digest);
    let mut body = tlv(INTEGER, &[1]);
    write_tlv(&mut body, SEQUENCE, &imprint);
    if let Some(nonce) = nonce {
        write_tlv(&mut body, INTEGER, &unsigned_integer(nonce));
    }
    write_tlv(&mut body, BOOLEAN, &[0xff]);
    tlv(SEQUENCE, &body)
}

/// The token of a DER `TimeStampResp` (RFC 3161 §2.4.2), if its status is
/// granted (0) or granted with modifications (1).
pub fn parse_response(response: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let mut outer = Reader::new(response);
    let mut resp = Reader::new(outer.expect(SEQUENCE, "TimeStampResp is not a SEQUENCE")?);
    let mut status_info = Reader::new(resp.expect(SEQUENCE, "PKIStatusInfo is not a SEQUENCE")?);
    let status = integer_to_u64(status_info.expect(INTEGER, "PKIStatus is not an INTEGER")?)
        .ok_or(DerError {
            what: "PKIStatus out of range",
        })?;
    if status > 1 {
        let mut text = String::new();
        if let Some(strings) = status_info.optional(SEQUENCE)? {
            let mut strings = Reader::new(strings);
            while let Ok((UTF8_STRING, s)) = strings.read() {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&String::from_utf8_lossy(s));
            }
        }
        return Err(TimestampError::Rejected { status, text });
    }
    if resp.is_empty() {
        return Err(TimestampError::NoToken);
    }
    let (tag, token) = resp.read_whole()?;
    if tag != SEQUENCE {
        return Err(TimestampError::NotSignedData);
    }
    parse_token(token)?;
    Ok(token.to_vec())
}

/// The `TSTInfo` inside a `TimeStampToken` (RFC 3161 §2.4.2, a CMS
/// ContentInfo of SignedData, RFC 5652). Its signature is NOT checked.
pub fn parse_token(token: &[u8]) -> Result<TstInfo, TimestampError> {
    let mut outer = Reader::new(token);
    let content_info = outer.expect(SEQUENCE, "ContentInfo is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(DerError {
            what: "bytes after the token",
        }
        .into());
    }
    let mut content_info = Reader::new(content_info);
    if content_info.expect(OID, "ContentInfo has no content type")? != SIGNED_DATA_OID {
        return Err(TimestampError::NotSignedData);
    }
    let mut explicit = Reader::new(content_info.expect(CONTEXT_0, "ContentInfo has no content")?);
    let mut signed_data = Reader::new(explicit.expect(SEQUENCE, "SignedData is not a SEQUENCE")?);
    signed_data.expect(INTEGER, "SignedData has no version")?;
    signed_data.expect(SET, "SignedData has no digestAlgorithms")?;
    let mut encap = Reader::new(signed_data.expect(SEQUENCE, "no encapContentInfo")?);
    if encap.expect(OID, "encapContentInfo has no content type")? != TST_INFO_OID {
        return Err(TimestampError::NotTstInfo);
    }
    let mut explicit = Reader::new(encap.expect(CONTEXT_0, "encapContentInfo has no eContent")?);
    let mut octets = Reader::new(explicit.expect(OCTET_STRING, "eContent is not an OCTET STRING")?);
    let mut tst = Reader::new(octets.expect(SEQUENCE, "TSTInfo is not a SEQUENCE")?);

    if tst.expect(INTEGER, "TSTInfo has no version")? != [1] {
        return Err(DerError {
            what: "TSTInfo version is not 1",
        }
        .into());
    }
    let policy = oid_to_string(tst.expect(OID, "TSTInfo has no policy")?);
    let mut imprint = Reader::new(tst.expect(SEQUENCE, "TSTInfo has no messageImprint")?);
    let mut algorithm = Reader::new(imprint.expect(SEQUENCE, "messageImprint has no algorithm")?);
    let hash_oid = algorithm.expect(OID, "messageImprint's algorithm has no OID")?;
    let hashed_message = imprint
        .expect(OCTET_STRING, "messageImprint has no hashedMessage")?
        .to_vec();
    let serial = hex(tst.expect(INTEGER, "TSTInfo has no serialNumber")?);
    let gen_time = tst.expect(GENERALIZED_TIME, "TSTInfo has no genTime")?;
    let gen_time = String::from_utf8_lossy(gen_time).into_owned();
    tst.optional(SEQUENCE)?; // accuracy
    tst.optional(BOOLEAN)?; // ordering
    let nonce = match tst.optional(INTEGER)? {
        Some(content) => Some(integer_to_u64(content).ok_or(DerError {
            what: "nonce is negative or longer than 64 bits",
        })?),
        None => None,
    };
    if hash_oid != SHA256_OID {
        return Err(TimestampError::HashAlgorithm);
    }
    Ok(TstInfo {
        policy,
        hashed_message,
        serial,
        gen_time,
        nonce,
    })
}

impl Timestamp {
    /// The block for a TSA's `response` to a request for `digest` with
    /// `nonce`: refused unless granted and its token carries both.
    pub fn from_response(
        tsa_url: &str,
        digest: &[u8; 32],
        nonce: u64,
        response: &[u8],
    ) -> Result<Timestamp, TimestampError> {
        let token = parse_response(response)?;
        let info = parse_token(&token)?;
        check_info(&info, digest, nonce)?;
        Ok(Timestamp {
            tsa_url: tsa_url.to_owned(),
            hash_alg: "SHA-256".to_owned(),
            nonce: format!("{nonce:016x}"),
            gen_time: info.gen_time,
            token: BASE64.encode(&token),
        })
    }

    /// Offline check (SPEC R3): the token's imprint is `digest` (SHA-256), its
    /// nonce and time are the block's. NOT checked: the CMS signature and the
    /// TSA's certificate (module docs).
    pub fn check(&self, digest: &[u8; 32]) -> Result<TstInfo, TimestampError> {
        if self.hash_alg != "SHA-256" {
            return Err(TimestampError::Block(format!(
                "hash_alg {:?}, only \"SHA-256\" is used",
                self.hash_alg
            )));
        }
        let nonce = u64::from_str_radix(&self.nonce, 16)
            .map_err(|_| TimestampError::Block(format!("nonce {:?} is not hex", self.nonce)))?;
        let token = BASE64
            .decode(&self.token)
            .map_err(|error| TimestampError::Block(format!("token is not base64: {error}")))?;
        let info = parse_token(&token)?;
        check_info(&info, digest, nonce)?;
        if info.gen_time != self.gen_time {
            return Err(TimestampError::BlockDiffers {
                field: "gen_time",
                block: self.gen_time.clone(),
                token: info.gen_time,
            });
        }
        Ok(info)
    }
}

fn check_info(info: &TstInfo, digest: &[u8; 32], nonce: u64) -> Result<(), TimestampError> {
    if info.hashed_message != digest {
        return Err(TimestampError::ImprintDiffers {
            token: hex(&info.hashed_message),
            manifest: hex(digest),
        });
    }
    if info.nonce != Some(nonce) {
        return Err(TimestampError::NonceDiffers {
            expected: format!("{nonce:016x}"),
            found: info
                .nonce
                .map_or_else(|| "none".to_owned(), |n| format!("{n:016x}")),
        });
    }
    Ok(())
}

/// Asks the TSA at `tsa_url` to timestamp `digest`, with a random nonce and
/// a [`REQUEST_TIMEOUT`].
pub async fn request(tsa_url: &str, digest: &[u8; 32]) -> Result<Timestamp, TimestampError> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| TimestampError::Http {
            url: tsa_url.to_owned(),
            source,
        })?;
    let nonce = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
    request_with(&client, tsa_url, digest, nonce).await
}

/// As [`request`], with a given client and nonce.
pub async fn request_with(
    client: &reqwest::Client,
    tsa_url: &str,
    digest: &[u8; 32],
    nonce: u64,
) -> Result<Timestamp, TimestampError> {
    let http = |source| TimestampError::Http {
        url: tsa_url.to_owned(),
        source,
    };
    let mut response = client
        .post(tsa_url)
        .header(reqwest::header::CONTENT_TYPE, "application/timestamp-query")
        .body(request_der(digest, Some(nonce)))
        .send()
        .await
        .map_err(http)?;
    if !response.status().is_success() {
        return Err(TimestampError::HttpStatus {
            url: tsa_url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(TimestampError::ResponseTooLarge {
                url: tsa_url.to_owned(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    tracing::debug!(tsa_url, bytes = body.len(), "TSA replied");
    Timestamp::from_response(tsa_url, digest, nonce, &body)
}

/// An OID's content octets, dotted.
fn oid_to_string(content: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &b in content {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests;
