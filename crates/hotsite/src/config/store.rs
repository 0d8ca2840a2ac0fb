//! `[store]`: where the gateway keeps its queue. SQLite by default (one file,
//! one gateway); PostgreSQL when the gateways of both sites share one queue
//! (SPEC M17, DESIGN.md "Storage").

use std::path::PathBuf;
use std::time::Duration;

use hotsite_core::config::{Issues, WrittenDuration};
use hotsite_core::Secret;
use hotsite_store::{PgOptions, SqliteOptions};
use serde::Deserialize;

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSection {
    /// The SQLite file (created if missing); `hotsite.db` unless `url` is given.
    pub(crate) path: Option<PathBuf>,
    /// A PostgreSQL URL (`postgres://user[:password]@host:port/database`): the
    /// store is then shared by every gateway configured with it.
    pub(crate) url: Option<Secret>,
    /// PostgreSQL: the schema holding hotsite's tables (default `public`).
    pub(crate) schema: Option<String>,
    /// PostgreSQL: read connections (default 4; writes use one more).
    pub(crate) pool_size: Option<usize>,
    /// PostgreSQL: how long a connection attempt may take (default 5 s).
    pub(crate) connect_timeout: Option<WrittenDuration>,
    /// How long a gateway's claim on a message or webhook lasts unless renewed
    /// (default 30 s): how soon another gateway takes over the work of one that
    /// died.
    pub(crate) lease: Option<WrittenDuration>,
}

/// The validated choice.
#[derive(Debug, Clone)]
pub(crate) enum StoreChoice {
    /// The embedded store.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// How it is opened (the reference window and correlation wait are
        /// filled in from `[smpp]`).
        options: SqliteOptions,
    },
    /// A PostgreSQL database shared by gateways (its URL may hold a password:
    /// `PgOptions`' `Debug` never prints it).
    Postgres(PgOptions),
}

impl StoreChoice {
    /// What `hotsite run` prints and `check-config` names: the file, or the
    /// database without its password.
    pub(crate) fn describe(&self) -> String {
        match self {
            StoreChoice::Sqlite { path, .. } => format!("store {}", path.display()),
            StoreChoice::Postgres(settings) => format!(
                "store {}{}",
                without_password(&settings.url),
                settings
                    .schema
                    .as_ref()
                    .map(|schema| format!(" (schema {schema})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The default lease (SPEC M17).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl StoreSection {
    /// The store to open and the lease to claim work under, or issues.
    pub(crate) fn validate(&self, issues: &mut Issues) -> (StoreChoice, Duration) {
        let lease = match &self.lease {
            None => DEFAULT_LEASE,
            Some(written) => match issues.positive_duration("store.lease", written, "30s") {
                Some(lease) if lease < Duration::from_secs(1) || lease > Duration::from_secs(3600) => {
                    issues.add(
                        "store.lease",
                        "must be between 1s and 1h: it is how long the other gateways wait \
                         before taking over the work of one that stopped answering",
                    );
                    DEFAULT_LEASE
                }
                Some(lease) => lease,
                None => DEFAULT_LEASE,
            },
        };
        let Some(url) = &self.url else {
            for (key, given) in [
                ("store.schema", self.schema.is_some()),
                ("store.pool_size", self.pool_size.is_some()),
                ("store.connect_timeout", self.connect_timeout.is_some()),
            ] {
                if given {
                    issues.add(key, "applies to PostgreSQL only: set store.url too");
                }
            }
            let path = self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("hotsite.db"));
            let options = SqliteOptions::default();
            return (StoreChoice::Sqlite { path, options }, lease);
        };
        if self.path.is_some() {
            issues.add(
                "store.url",
                "give either path (SQLite, one gateway) or url (PostgreSQL, shared), not both",
            );
        }
        if let Err(reason) = check_url(url.expose()) {
            issues.add("store.url", reason);
        }
        if let Some(schema) = &self.schema {
            if !is_identifier(schema) {
                issues.add(
                    "store.schema",
                    format!(
                        "{schema:?} is not a plain identifier: lower-case letters, digits \
                         and _, not starting with a digit, at most 63 characters"
                    ),
                );
            }
        }
        let pool_size = self.pool_size.unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            issues.add("store.pool_size", "must be between 1 and 64");
        }
        let connect_timeout = match &self.connect_timeout {
            Some(written) => issues
                .positive_duration("store.connect_timeout", written, "5s")
                .unwrap_or(Duration::from_secs(5)),
            None => Duration::from_secs(5),
        };
        (
            StoreChoice::Postgres(PgOptions {
                url: url.expose().to_owned(),
                schema: self.schema.clone(),
                pool_size,
                connect_timeout,
                ..PgOptions::default()
            }),
            lease,
        )
    }
}

/// A PostgreSQL URL hotsite can use: the scheme, a host, and no request for
/// TLS, which this build does not speak (refused rather than connecting in the
/// clear).
fn check_url(url: &str) -> Result<(), String> {
    let shown = without_password(url);
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(format!(
            "{shown:?} is not a PostgreSQL URL: write postgres://user@host:5432/database"
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!(
            "{shown:?} names no host: write postgres://user@host:5432/database"
        ));
    }
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or_default();
    for pair in query.split('&') {
        if let Some(mode) = pair.strip_prefix("sslmode=") {
            if mode != "disable" && mode != "prefer" && mode != "allow" {
                return Err(format!(
                    "sslmode={mode}: TLS to PostgreSQL is not supported by this build; \
                     reach the database over a private network or a TLS tunnel \
                     (stunnel, a service mesh) and leave sslmode out"
                ));
            }
        }
    }
    Ok(())
}

/// `url` with any password replaced by `***`.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(toml: &str) -> (Result<StoreChoice, Vec<String>>, Duration) {
        let section: StoreSection = toml::from_str(toml).expect("parses");
        let mut issues = Issues::new();
        let (choice, lease) = section.validate(&mut issues);
        match issues.finish() {
            Ok(()) => (Ok(choice), lease),
            Err(found) => (Err(found.iter().map(ToString::to_string).collect()), lease),
        }
    }

    #[test]
    fn sqlite_is_the_default() {
        let (choice, lease) = validate("");
        assert!(matches!(choice, Ok(StoreChoice::Sqlite { path, .. }) if path == PathBuf::from("hotsite.db")));
        assert_eq!(lease, DEFAULT_LEASE);
    }

    /// SPEC M17: a shared store is PostgreSQL, named by URL; its password is
    /// never shown.
    #[test]
    fn postgres_by_url() {
        let (choice, lease) = validate(
            r#"url = "postgres://hotsite:s3cret@db.example:5432/hotsite"
               schema = "site_pair"
               pool_size = 8
               lease = "10s""#,
        );
        let Ok(StoreChoice::Postgres(settings)) = &choice else {
            panic!("{choice:?}");
        };
        assert_eq!(settings.pool_size, 8);
        assert_eq!(settings.schema.as_deref(), Some("site_pair"));
        assert_eq!(lease, Duration::from_secs(10));
        let shown = choice.as_ref().unwrap().describe();
        assert_eq!(
            shown,
            "store postgres://hotsite:***@db.example:5432/hotsite (schema site_pair)"
        );
        assert!(!format!("{choice:?}").contains("s3cret"));
    }

    #[test]
    fn bad_store_settings_are_named() {
        let (choice, _) = validate(
            r#"url = "mysql://db/hotsite"
               path = "x.db"
               schema = "1; drop"
               pool_size = 0
               lease = "0s""#,
        );
        let issues = choice.expect_err("refused");
        let text = issues.join("\n");
        for needle in [
            "store.url: give either path",
            "store.url: \"mysql://db/hotsite\" is not a PostgreSQL URL",
            "store.schema: \"1; drop\" is not a plain identifier",
            "store.pool_size: must be between 1 and 64",
            "store.lease: \"0s\" is not a positive duration",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        let (choice, _) = validate(r#"url = "postgres://u:pw@db/x?sslmode=require""#);
        let text = choice.expect_err("TLS refused").join("\n");
        assert!(text.contains("sslmode=require: TLS to PostgreSQL is not supported"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
        let (choice, _) = validate(r#"schema = "hotsite""#);
        assert!(choice
            .expect_err("schema without url")
            .join("\n")
            .contains("store.schema: applies to PostgreSQL only"));
        let (choice, _) = validate(r#"url = "postgres:///x""#);
        assert!(choice.expect_err("no host").join("\n").contains("names no host"));
    }
}
