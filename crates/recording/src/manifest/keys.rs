//! Ed25519 keys for signing manifests (SPEC R3): the signing key in a
//! PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
//! -algorithm ed25519` writes), readable by its owner only; public keys as
//! base64 of their 32 bytes or as an SPKI PEM file; the key id.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::hex;

/// Why a key could not be read, written or parsed.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The signing key is readable or writable by group or others.
    #[error("key file {path} has mode {mode:04o}: a signing key must be readable by its owner only (chmod 600)")]
    Permissions { path: PathBuf, mode: u32 },
    /// Not a PKCS#8 PEM Ed25519 private key.
    #[error("key file {path} is not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----): {reason}")]
    Format { path: PathBuf, reason: String },
    /// A public key given as text is neither base64 of 32 bytes nor an SPKI
    /// PEM file.
    #[error("public key {given:?}: {reason}")]
    PublicKey { given: String, reason: String },
    /// [`write_signing_key`] does not overwrite.
    #[error("key file {0} already exists; not overwriting a key")]
    Exists(PathBuf),
}

/// A fresh signing key from the operating system's random source.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// The key id: hex of the first 16 bytes of SHA-256 over the 32-byte public
/// key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes())[..16])
}

/// The public key as base64 (standard alphabet, padded) of its 32 bytes.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Writes `key` to a new file at `path` as PKCS#8 PEM, mode 0600 on Unix.
/// Refuses to overwrite an existing file.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    // PKCS#8 v1 (RFC 8410), the secret key only, as `openssl genpkey`
    // writes it: OpenSSL 3.0 refuses the v2 form (with the public key) that
    // ed25519-dalek writes by default.
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|error| KeyError::Format {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    let mut options = fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created with 0600 from the start: never readable by others, not
        // even between create and chmod.
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_owned())
        } else {
            io(error)
        }
    })?;
    file.write_all(pem.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Reads a signing key from a PKCS#8 PEM file. On Unix the file must not be
/// readable or writable by group or others.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    // A PEM key is a few hundred bytes; anything large is not one.
    if meta.len() > 16 * 1024 {
        return Err(KeyError::Format {
            path: path.to_owned(),
            reason: format!("{} bytes is too large for a key", meta.len()),
        });
    }
    let text = fs::read_to_string(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidData => KeyError::Format {
            path: path.to_owned(),
            reason: "not text".into(),
        },
        _ => io(error),
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|error| KeyError::Format {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// A public key given on a command line: base64 of its 32 bytes, or the
/// path of a file holding that base64 or an SPKI PEM (`-----BEGIN PUBLIC
/// KEY-----`, as `openssl pkey -pubout` writes).
pub fn parse_public_key(given: &str) -> Result<VerifyingKey, KeyError> {
    let path = Path::new(given);
    if path.is_file() {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text).map_err(|error| KeyError::PublicKey {
                given: given.to_owned(),
                reason: format!("not an Ed25519 SPKI PEM public key: {error}"),
            });
        }
        return public_key_from_base64(text).map_err(|reason| KeyError::PublicKey {
            given: given.to_owned(),
            reason,
        });
    }
    public_key_from_base64(given.trim()).map_err(|reason| KeyError::PublicKey {
        given: given.to_owned(),
        reason: format!("{reason} (and no such file)"),
    })
}

/// A public key from base64 of its 32 bytes.
pub(crate) fn public_key_from_base64(text: &str) -> Result<VerifyingKey, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|error| format!("not base64: {error}"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, an Ed25519 public key has 32", b.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 point".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hotsite-recording-keys-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A key written is read back, mode 0600, never overwritten (R3).
    #[test]
    fn write_then_load() {
        let dir = temp("roundtrip");
        let path = dir.join("key.pem");
        let key = generate_signing_key();
        write_signing_key(&path, &key).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        // PKCS#8 v1 as openssl writes it: SEQUENCE of 46 bytes, version 0.
        assert!(text.contains("\nMC4CAQAwBQYDK2VwBCIEI"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let loaded = load_signing_key(&path).unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
        assert!(matches!(
            write_signing_key(&path, &key),
            Err(KeyError::Exists(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A key openssl wrote (`openssl genpkey -algorithm ed25519`, PKCS#8 v1)
    /// loads, and its public key is the one `openssl pkey -pubout` printed.
    #[test]
    fn openssl_keys_load() {
        let dir = temp("openssl");
        let path = dir.join("key.pem");
        fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VwBCIEIFqM4lE+nIABN4KFAxZrjPEKwP3r3tNPslrmV4Yt5UuO\n\
             -----END PRIVATE KEY-----\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let key = load_signing_key(&path).unwrap();
        let spki = dir.join("pub.pem");
        fs::write(
            &spki,
            "-----BEGIN PUBLIC KEY-----\n\
             MCowBQYDK2VwAyEAYznV6hY88iOlyRq00WtQZ4/MSi74iPTROVDXXyRwN2I=\n\
             -----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let public = parse_public_key(spki.to_str().unwrap()).unwrap();
        assert_eq!(public, key.verifying_key());
        assert_eq!(
            parse_public_key(&public_key_base64(&public)).unwrap(),
            public
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A key file readable by others, or not a PKCS#8 key, is refused by name.
    #[test]
    fn bad_key_files_are_named() {
        let dir = temp("bad");
        let path = dir.join("key.pem");
        write_signing_key(&path, &generate_signing_key()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let error = load_signing_key(&path).unwrap_err();
            assert!(
                matches!(error, KeyError::Permissions { mode: 0o644, .. }),
                "{error}"
            );
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        let other = dir.join("other.pem");
        fs::write(
            &other,
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let error = load_signing_key(&other).unwrap_err();
        assert!(matches!(error, KeyError::Format { .. }), "{error}");
        assert!(matches!(
            parse_public_key("AAAA"),
            Err(KeyError::PublicKey { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
