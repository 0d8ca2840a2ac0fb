//! The custody manifest of a recorded call (SPEC R3, V3): a JSON document
//! naming the call (Call-ID, times, trunk and group, media and failover
//! region), its sources (the edge journal with every sealed segment's hash
//! and seal in chain order; the cloud recordings) and the merged file with
//! their sizes and SHA-256, the merge's report (filled spans, gaps, holds,
//! DTMF, handovers), signed with Ed25519 over its RFC 8785 canonical form,
//! optionally with an RFC 3161 timestamp over the signed form.
//!
//! - [`ManifestBuilder`] hashes the files (streaming, except the journal,
//!   which the journal reader holds in memory) and makes the unsigned
//!   manifest; [`Manifest::sign`] signs it; [`Manifest::to_json`] is the
//!   file's bytes (the canonical form of the whole manifest).
//! - [`verify_manifest`] checks a manifest's bytes offline: format version,
//!   key id, the pinned key if one is given, the signature, the timestamp's
//!   imprint. [`verify_files`] then checks the files against it and names the
//!   first bad thing ("segment 3 of journal.hsj: hash differs …").
//!
//! Signed bytes: the canonical JSON (RFC 8785, [`canonical`]) of the manifest
//! without its `signature` and `timestamp` members. Timestamped bytes: the
//! canonical JSON without its `timestamp` member (so the signature is
//! covered). The verifier canonicalizes the JSON it parsed, not a
//! re-serialization of the struct, so every member, known or not, is covered.

mod build;
pub mod canonical;
pub mod keys;
pub mod timestamp;
mod verify;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use build::{BuildError, CallInfo, ManifestBuilder};
pub use canonical::{to_canonical, CanonicalError};
/// The key types, so that users need not depend on ed25519-dalek themselves.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use timestamp::{Timestamp, TimestampError};
pub use verify::{
    verify_files, verify_files_with, verify_manifest, Check, Files, VerifyError, VerifyReport,
};

/// The format version this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// The manifest's usual file name, next to the files it names.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The largest manifest [`verify_manifest`] reads.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// The signature algorithm's name in the signature block.
pub const SIGNATURE_ALG: &str = "Ed25519";

/// A call's custody manifest (SPEC R3). Field order here is for reading; the
/// file's order is RFC 8785's (sorted member names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    pub call_id: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    /// The trunk and the trunk group the call went through.
    pub trunk: String,
    pub group: String,
    /// The trunk's media region and failover region (SPEC V3).
    pub media_region: String,
    pub failover_region: String,
    pub sources: Sources,
    pub merged: MergedFile,
    /// The merge's report, embedded as is: filled spans (`{channel, source,
    /// start_ms, end_ms}`), gaps (`{channel, start_ms, end_ms}`), holds, DTMF,
    /// handovers. Integers and strings only (RFC 8785 floats are refused).
    pub merge: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

/// What the merged file was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub edge: EdgeSource,
    /// The provider's cloud recordings; absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloud: Vec<CloudSource>,
}

/// The edge journal (SPEC R1, R3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSource {
    /// File name, next to the manifest (normally `journal.hsj`).
    pub file: String,
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// seal_{-1}: SHA-256 of the journal's header (which holds the Call-ID).
    pub genesis: String,
    /// Every sealed segment, in chain order.
    pub segments: Vec<SegmentEntry>,
    pub tail: TailState,
}

/// One sealed segment of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentEntry {
    pub index: u64,
    /// Byte offset and length of its frames in the journal file.
    pub offset: u64,
    pub length: u64,
    pub records: u64,
    /// SHA-256 of the bytes `offset..offset + length`, hex.
    pub hash: String,
    /// seal_n = SHA-256(seal_{n-1} || hash || n as u64 LE), hex.
    pub seal: String,
}

/// How the journal ended (the journal reader's [`Tail`](crate::journal::Tail)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum TailState {
    /// Everything sealed, end record present.
    Complete,
    /// No end record; `unsealed_records` after the last seal, intact by CRC.
    Unfinished { unsealed_records: u64 },
    /// A crash tore the unsynced tail: `lost_bytes` after `valid_bytes`.
    Torn {
        unsealed_records: u64,
        valid_bytes: u64,
        lost_bytes: u64,
    },
}

/// A cloud recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSource {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// When the cloud recording starts, as the provider says.
    pub started_unix_ms: u64,
}

/// The merged recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergedFile {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub sample_rate: u32,
    pub channels: u16,
}

/// `{"alg":"Ed25519","key_id":…,"public_key":…,"signature":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    /// [`SIGNATURE_ALG`].
    pub alg: String,
    /// Hex of the first 16 bytes of SHA-256 over the public key.
    pub key_id: String,
    /// The 32-byte public key, base64.
    pub public_key: String,
    /// The 64-byte signature over [`Manifest::canonical_bytes`], base64.
    pub signature: String,
}

/// Why a manifest could not be signed, timestamped or written.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("manifest has no canonical form: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("manifest does not serialize: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest is not signed; sign it before timestamping")]
    Unsigned,
    #[error("timestamp: {0}")]
    Timestamp(#[from] TimestampError),
}

impl Manifest {
    /// The bytes the signature covers: the canonical JSON of the manifest
    /// without `signature` and `timestamp`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let mut value = serde_json::to_value(self)?;
        strip(&mut value, &["signature", "timestamp"]);
        Ok(to_canonical(&value)?)
    }

    /// Signs the manifest with `key` (SPEC R3), replacing any signature and
    /// dropping any timestamp (it covered the old signature).
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), ManifestError> {
        self.signature = None;
        self.timestamp = None;
        let signature = key.sign(&self.canonical_bytes()?);
        let public = key.verifying_key();
        self.signature = Some(SignatureBlock {
            alg: SIGNATURE_ALG.to_owned(),
            key_id: keys::key_id(&public),
            public_key: keys::public_key_base64(&public),
            signature: BASE64.encode(signature.to_bytes()),
        });
        Ok(())
    }

    /// What an RFC 3161 timestamp covers: SHA-256 of the canonical JSON of
    /// the signed manifest without `timestamp`.
    pub fn timestamp_digest(&self) -> Result<[u8; 32], ManifestError> {
        if self.signature.is_none() {
            return Err(ManifestError::Unsigned);
        }
        let mut value = serde_json::to_value(self)?;
        strip(&mut value, &["timestamp"]);
        Ok(Sha256::digest(to_canonical(&value)?).into())
    }

    /// Asks the TSA at `tsa_url` for a timestamp of the signed manifest and
    /// stores it (SPEC R3, optional).
    pub async fn request_timestamp(&mut self, tsa_url: &str) -> Result<(), ManifestError> {
        let digest = self.timestamp_digest()?;
        self.timestamp = Some(timestamp::request(tsa_url, &digest).await?);
        Ok(())
    }

    /// The manifest file's bytes: the canonical JSON of the whole manifest.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(to_canonical(&serde_json::to_value(self)?)?)
    }
}

/// Removes `members` from a JSON object.
pub(crate) fn strip(value: &mut Value, members: &[&str]) {
    if let Value::Object(map) = value {
        for member in members {
            map.remove(*member);
        }
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The first 16 hex digits and an ellipsis, for messages.
pub(crate) fn short(hex: &str) -> String {
    match hex.get(..16) {
        Some(head) if hex.len() > 16 => format!("{head}…"),
        _ => hex.to_owned(),
    }
}
