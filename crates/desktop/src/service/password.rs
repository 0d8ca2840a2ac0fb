//! Agents' passwords: stored as Argon2id PHC strings, never in plain text.
//!
//! Argon2id is deliberately slow and memory-hard (the default parameters take
//! 19 MiB and tens of milliseconds per check), so the service checks
//! passwords on the blocking pool, a few at a time ([`Verifier`]): a flood of
//! `hello`s queues up instead of taking the memory of hundreds of checks at
//! once (DESIGN.md invariant 6).

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// A PHC string of `password` with Argon2id's default parameters and a
/// random salt (`hotsite desktop hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `phc` is an Argon2id PHC string this service can verify.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|error| {
        format!("not a PHC string ({error}); make one with `hotsite desktop hash-password`")
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "algorithm {:?}: expected argon2id (`hotsite desktop hash-password`)",
            parsed.algorithm.as_str()
        ));
    }
    // Parameters out of bounds fail here rather than at the first hello.
    argon2::Params::try_from(&parsed)
        .map_err(|error| format!("bad Argon2id parameters: {error}"))?;
    if parsed.hash.is_none() {
        return Err("the PHC string has no hash".to_owned());
    }
    Ok(())
}

/// Whether `password` matches `phc` (false for a PHC string that does not
/// parse). Slow: call it on the blocking pool.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks passwords on the blocking pool, at most `concurrency` at once.
#[derive(Debug, Clone)]
pub struct Verifier {
    permits: Arc<Semaphore>,
}

impl Verifier {
    /// A verifier running at most `concurrency` checks at once (at least 1).
    pub fn new(concurrency: usize) -> Verifier {
        Verifier {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Whether `password` matches `phc`. With `None` (an unknown user) a
    /// check of the same cost runs against a fixed hash and fails, so the
    /// answer time does not tell which users exist.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => verify(&password, &phc),
            None => {
                let _ = verify(&password, unknown_user_hash());
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// A hash with the default parameters that no password is checked against
/// for real: the cost of a check for an unknown user.
fn unknown_user_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        hash_password("no user has this password").unwrap_or_else(|_| String::new())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap hash for tests: the parameters travel in the PHC string.
    fn cheap_hash(password: &str) -> String {
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        argon
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    /// SPEC D1: the agent's password is checked against its stored hash.
    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        check_phc(&phc).unwrap();
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsE", &phc));
        assert!(!verify("", &phc));
        let cheap = cheap_hash("battery");
        assert!(verify("battery", &cheap));
        assert!(!verify("staple", &cheap));
        assert!(!verify("battery", "not a hash"));
    }

    #[test]
    fn only_argon2id_phc_strings_pass_the_config_check() {
        for (phc, expected) in [
            ("plain text password", "not a PHC string"),
            (
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "expected argon2id",
            ),
            (
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "bad Argon2id parameters",
            ),
            ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ", "has no hash"),
        ] {
            let reason = check_phc(phc).unwrap_err();
            assert!(reason.contains(expected), "{phc}: {reason}");
        }
        check_phc(&cheap_hash("x")).unwrap();
    }

    #[tokio::test]
    async fn the_verifier_runs_checks_off_the_runtime() {
        let verifier = Verifier::new(2);
        let phc = cheap_hash("pw");
        assert!(verifier.verify("pw".into(), Some(phc.clone())).await);
        assert!(!verifier.verify("other".into(), Some(phc)).await);
        assert!(!verifier.verify("pw".into(), None).await);
    }
}
