//! How to reach the database: [`PgOptions`], checked and turned into the
//! driver's configuration before anything connects.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::error::StoreError;

/// How to connect a [`PgStore`](super::PgStore).
#[derive(Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The server and database, in tokio-postgres' syntax: a URL
    /// (`postgres://user:password@host:port/db?application_name=…`) or
    /// `key=value` pairs (`host=… user=… dbname=…`). TLS is not supported yet: a
    /// URL asking for it (`sslmode=require`) is refused, never connected in clear.
    pub url: String,
    /// The schema holding the tables, created if missing; it is the only entry of
    /// every connection's `search_path`. Lower-case letters, digits and `_`,
    /// starting with a letter or `_`, at most 63 bytes. `None`: `public`.
    pub schema: Option<String>,
    /// Read connections (default 4).
    pub pool_size: usize,
    /// At most this many write requests go into one transaction (default 4096).
    pub max_batch: usize,
    /// Write connections, each committing its own group (default 2): while one
    /// waits for its commit to reach the disk, the next group is already being
    /// written on another, so the server's CPU is not idle during fsyncs. Each
    /// group is still one transaction; groups in flight at once are independent
    /// requests (a caller that needs an order waits for one answer before
    /// sending the next, as the dispatcher and the inbox do per message).
    pub writers: usize,
    /// How long connecting may take before the request fails with
    /// [`StoreError::Unavailable`] (default 5 s).
    pub connect_timeout: Duration,
    /// As [`SqliteOptions::reference_window_ms`](crate::SqliteOptions::reference_window_ms)
    /// (default 24 h, SPEC M16).
    pub reference_window_ms: i64,
    /// As [`SqliteOptions::receipt_correlation_wait_ms`](crate::SqliteOptions::receipt_correlation_wait_ms)
    /// (default 60 s, SPEC M13).
    pub receipt_correlation_wait_ms: i64,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
            schema: None,
            pool_size: 4,
            max_batch: 4096,
            writers: 2,
            connect_timeout: Duration::from_secs(5),
            reference_window_ms: 24 * 3_600_000,
            receipt_correlation_wait_ms: 60_000,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only where it points is shown.
        let target = Target::parse(&self.url)
            .map(|config| describe_config(&config))
            .unwrap_or_else(|_| "<invalid url>".to_owned());
        f.debug_struct("PgOptions")
            .field("url", &target)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("max_batch", &self.max_batch)
            .field("writers", &self.writers)
            .field("connect_timeout", &self.connect_timeout)
            .field("reference_window_ms", &self.reference_window_ms)
            .field(
                "receipt_correlation_wait_ms",
                &self.receipt_correlation_wait_ms,
            )
            .finish()
    }
}

/// The application name connections carry unless the URL names one.
const APPLICATION_NAME: &str = "hotsite";

/// A checked [`PgOptions`]: the driver's configuration and the schema name.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
}

impl Target {
    fn parse(url: &str) -> Result<tokio_postgres::Config, StoreError> {
        tokio_postgres::Config::from_str(url).map_err(|error| {
            StoreError::InvalidOptions(format!("the PostgreSQL url does not parse: {error}"))
        })
    }

    /// Checks the options: a URL that parses and asks for no TLS, a schema name
    /// that is a plain identifier.
    pub(crate) fn new(options: &PgOptions) -> Result<Target, StoreError> {
        let mut config = Target::parse(&options.url)?;
        // Prefer falls back to plain text when no TLS is offered, as it does with
        // libpq; anything stricter must not be quietly downgraded.
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(StoreError::InvalidOptions(format!(
                "the PostgreSQL url asks for TLS (sslmode={:?}), which this hotsite does not \
                 support yet: it will not connect in clear instead; use sslmode=disable on a \
                 trusted network, or a local TLS tunnel",
                config.get_ssl_mode()
            )));
        }
        config.ssl_mode(SslMode::Disable);
        let schema = options
            .schema
            .clone()
            .unwrap_or_else(|| "public".to_owned());
        check_schema_name(&schema)?;
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        // Every connection looks up the tables in the schema, and nowhere else.
        // A gateway whose link dies in the middle of a transaction must not
        // hold the other site's gateway on its locks: the server ends a
        // transaction left idle for 10 s (ours never pause between statements)
        // and probes a silent client after 10 s; a lock wait longer than 20 s
        // is run again rather than waited out.
        let search_path = format!(
            "-c search_path={schema} -c idle_in_transaction_session_timeout=10s \
             -c lock_timeout=20s -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
             -c tcp_keepalives_count=3"
        );
        let startup = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {search_path}"),
            _ => search_path,
        };
        config.options(startup);
        config.connect_timeout(options.connect_timeout);
        // A server that vanished without a reset (a cut link) is noticed in
        // about half a minute, not after the kernel's two hours.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        // Data sent and not acknowledged for this long: the server is gone
        // (keepalives do not run while data is outstanding).
        config.tcp_user_timeout(Duration::from_secs(20));
        Ok(Target { config, schema })
    }

    /// `user@host:port/db schema s`: where the store is, never a password.
    pub(crate) fn describe(&self) -> String {
        describe_config(&self.config)
    }
}

fn describe_config(config: &tokio_postgres::Config) -> String {
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts(config),
        config.get_dbname().unwrap_or("")
    )
}

/// `host:port[,host:port…]` of a configuration: where it connects, never who.
fn hosts(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = config
                .get_ports()
                .get(index)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    hosts.join(",")
}

impl PgOptions {
    /// The `host:port` list `url` names (no user, no password), for messages
    /// such as `check-config`'s; `InvalidOptions` if the URL does not parse.
    pub fn hosts(&self) -> Result<String, StoreError> {
        Target::parse(&self.url).map(|config| hosts(&config))
    }
}

/// A schema name is spliced into DDL and the `search_path`: only a plain
/// lower-case identifier is accepted, so no quoting is ever needed.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && schema.len() <= 63;
    if plain && !schema.starts_with("pg_") {
        return Ok(());
    }
    Err(StoreError::InvalidOptions(format!(
        "schema {schema:?} is not a plain PostgreSQL identifier: use lower-case letters, digits \
         and _, starting with a letter or _, at most 63 bytes, not starting with pg_"
    )))
}

/// Planner settings for the statements of the hot path (the writers' sessions,
/// and each claim's transaction). Each of them walks an index to a few rows (a
/// page of the queue, a batch's ids); the planner must not take the queue for
/// small when its statistics lag (a new schema, or a backlog that grew faster
/// than autovacuum's ANALYZE): it then scans and sorts the whole queue per
/// claim (49 ms instead of 6 ms at 200,000 queued) and hashes it per batch of
/// submits. So scans, bitmap scans and hash or merge joins are priced out
/// there. Reads that sum a table (`stats`) keep the default planner.
pub(crate) const INDEX_ONLY_PLANS: &str = "enable_seqscan = off, enable_bitmapscan = off, \
     enable_hashjoin = off, enable_mergejoin = off";

/// [`INDEX_ONLY_PLANS`] as `SET` (session) or `SET LOCAL` (transaction) commands.
pub(crate) fn index_only_plans(local: bool) -> String {
    let scope = if local { "SET LOCAL" } else { "SET" };
    INDEX_ONLY_PLANS
        .split(", ")
        .map(|setting| format!("{scope} {setting};"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> PgOptions {
        PgOptions {
            url: url.to_owned(),
            ..PgOptions::default()
        }
    }

    #[test]
    fn tls_is_refused_not_downgraded() {
        for url in [
            "postgres://u@h/db?sslmode=require",
            "host=h user=u sslmode=require",
        ] {
            let error = Target::new(&options(url)).err().expect(url);
            assert!(
                matches!(&error, StoreError::InvalidOptions(text) if text.contains("TLS")),
                "{error:?}"
            );
        }
        for url in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/db?sslmode=prefer",
            "host=h user=u dbname=db",
        ] {
            Target::new(&options(url)).expect(url);
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["public", "hotsite", "_x", "hs_test_12_3"] {
            check_schema_name(good).expect(good);
        }
        for bad in [
            "",
            "Hotsite",
            "1abc",
            "a-b",
            "a;drop table x",
            "a b",
            "pg_catalog",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(check_schema_name(bad), Err(StoreError::InvalidOptions(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn search_path_application_name_and_description() {
        let target = Target::new(&PgOptions {
            url: "postgres://ann:secret@db.example:6543/gw?options=-c%20work_mem%3D8MB".to_owned(),
            schema: Some("gw".to_owned()),
            ..PgOptions::default()
        })
        .unwrap();
        assert_eq!(
            target.config.get_options(),
            Some(
                "-c work_mem=8MB -c search_path=gw -c idle_in_transaction_session_timeout=10s \
                 -c lock_timeout=20s -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
                 -c tcp_keepalives_count=3"
            )
        );
        assert_eq!(target.config.get_application_name(), Some("hotsite"));
        assert_eq!(target.describe(), "ann@db.example:6543/gw");
        let debug = format!(
            "{:?}",
            PgOptions {
                url: "postgres://ann:secret@db.example/gw".to_owned(),
                ..PgOptions::default()
            }
        );
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("ann@db.example:5432/gw"), "{debug}");
        let named = Target::new(&options("postgres://u@h/db?application_name=gw-a")).unwrap();
        assert_eq!(named.config.get_application_name(), Some("gw-a"));
    }
}
