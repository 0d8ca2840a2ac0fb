//! `hotsite recording …` (SPEC R3): `verify` checks a recording's custody
//! manifest and its files offline and names the first bad thing; `keygen`
//! writes an Ed25519 signing key for manifests.
//!
//! Exit codes of `verify`: 0 when every check passed, 1 when one failed
//! (the line starting `FAIL` says which), 2 when it could not start (an
//! unreadable `--public-key`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hotsite_recording::manifest::{
    keys, verify_files_with, verify_manifest, Files, VerifyError, VerifyingKey, MAX_MANIFEST_BYTES,
};

/// `hotsite recording …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RecordingAction {
    /// Checks a recording's manifest offline: its Ed25519 signature (and the
    /// pinned key, with --public-key), its RFC 3161 timestamp's imprint if it
    /// has one, the edge journal's segments against the manifest's hash chain
    /// and against the journal's own seals, the merged file's and the cloud
    /// recordings' SHA-256. Prints one line per check; exits 0 only if all
    /// pass, else names the first bad item (e.g. "segment 3 of journal.hsj:
    /// hash differs").
    Verify(VerifyArgs),
    /// Writes a new Ed25519 signing key for manifests (PKCS#8 PEM, mode
    /// 0600; never overwrites) and prints its public key and key id.
    Keygen {
        /// Where to write the key, e.g. recording-key.pem.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `hotsite recording verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The manifest (manifest.json).
    manifest: PathBuf,
    /// The files, where they are not next to the manifest under the names in
    /// it: the journal (its call directory, or the file), the merged WAV, the
    /// cloud WAVs (matched by file name).
    files: Vec<PathBuf>,
    /// Require the manifest to be signed by this key: base64 of the 32-byte
    /// Ed25519 public key, or a file holding that or an SPKI PEM. Without it
    /// the manifest's embedded key is used, and the output says it is not
    /// pinned.
    #[arg(long)]
    public_key: Option<String>,
}

pub(crate) fn run(action: RecordingAction) -> anyhow::Result<ExitCode> {
    match action {
        RecordingAction::Verify(args) => Ok(verify(&args)),
        RecordingAction::Keygen { out } => keygen(&out),
    }
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::generate_signing_key();
    keys::write_signing_key(out, &key)?;
    let public = key.verifying_key();
    println!(
        "wrote {} (Ed25519 signing key, PKCS#8 PEM, mode 0600)",
        out.display()
    );
    println!("public_key: {}", keys::public_key_base64(&public));
    println!("key_id: {}", keys::key_id(&public));
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let pinned = match args.public_key.as_deref().map(keys::parse_public_key) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(error)) => {
            eprintln!("error: --public-key: {error}");
            return ExitCode::from(2);
        }
    };
    match check(args, pinned.as_ref()) {
        Ok(count) => {
            println!("verified: all {count} checks passed");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("FAIL {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every check, printing each as it passes; the number of checks.
fn check(args: &VerifyArgs, pinned: Option<&VerifyingKey>) -> Result<usize, VerifyError> {
    let bytes = read_manifest(&args.manifest)?;
    let manifest = verify_manifest(&bytes, pinned)?;
    let key_id = manifest
        .signature
        .as_ref()
        .map_or("?", |s| s.key_id.as_str());
    let pin = if pinned.is_some() {
        "pinned"
    } else {
        "not pinned (pass --public-key to require a key)"
    };
    println!("ok   signature: Ed25519, signed by key_id {key_id}, {pin}");
    println!(
        "ok   manifest: Call-ID {:?}, trunk {} ({}), media region {}, failover region {}",
        manifest.call_id,
        manifest.trunk,
        manifest.group,
        manifest.media_region,
        manifest.failover_region
    );
    let mut count = 2;
    if let Some(timestamp) = &manifest.timestamp {
        let digest = manifest
            .timestamp_digest()
            .map_err(|error| VerifyError::Format(error.to_string()))?;
        println!(
            "ok   timestamp: RFC 3161 token of {} from {} covers this manifest (SHA-256 {}); the TSA's signature is not checked here: openssl ts -verify",
            timestamp.gen_time,
            timestamp.tsa_url,
            hex(&digest),
        );
        count += 1;
    }
    let dir = args
        .manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let files = Files::resolve(&manifest, dir, &args.files)?;
    let report = verify_files_with(&manifest, &files, &mut |check| println!("ok   {check}"))?;
    Ok(count + report.checks.len())
}

fn read_manifest(path: &Path) -> Result<Vec<u8>, VerifyError> {
    use std::io::Read;
    let io = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // One byte more than the limit, so that verify_manifest names the size.
    file.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
