//! The PostgreSQL side of a run (`--store postgres`): a fresh, empty schema
//! per run (`hotsite_bench_<pid>_<n>`), its size on disk, the server's
//! settings for the report, and dropping it afterwards. Everything goes
//! through `psql` (no client library in the bench: it only creates, sizes and
//! drops; the gateway under test is what talks to the database).

use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Runs one SQL statement with `psql` and returns its unaligned output.
fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = Command::new("psql")
        // -w: never prompt for a password (the bench runs unattended).
        .args([
            "-X",
            "-q",
            "-w",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (install postgresql-client)")?;
    if !output.status.success() {
        bail!(
            "psql {:?} failed ({}): {}",
            sql,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The name of run `n`'s schema in this process: a plain identifier, so it
/// can go into SQL and into `[store] schema` as it is.
pub(crate) fn schema_name(pid: u32, n: u64) -> String {
    format!("hotsite_bench_{pid}_{n}")
}

/// What the report says about the server: version and durability settings,
/// so a figure is never read as fsync-on when it was not.
pub(crate) fn describe_server(url: &str) -> anyhow::Result<String> {
    let line = psql(
        url,
        "SELECT current_setting('server_version') || '|' || current_setting('fsync') || '|' \
         || current_setting('synchronous_commit') || '|' || current_setting('wal_sync_method') \
         || '|' || current_setting('shared_buffers')",
    )?;
    let fields: Vec<&str> = line.split('|').collect();
    match fields.as_slice() {
        [version, fsync, commit, sync, buffers] => Ok(format!(
            "PostgreSQL {version} (fsync {fsync}, synchronous_commit {commit}, wal_sync_method {sync}, shared_buffers {buffers}), same machine"
        )),
        _ => Ok(format!("PostgreSQL: {line}")),
    }
}

/// An empty schema for one run; dropped (with everything the gateways
/// created in it) by [`PgSchema::drop_now`] or, failing that, on drop.
pub(crate) struct PgSchema {
    url: String,
    name: String,
    dropped: bool,
}

impl PgSchema {
    /// Creates `name` empty (dropping a leftover of the same name first).
    pub(crate) fn create(url: &str, name: String) -> anyhow::Result<PgSchema> {
        psql(
            url,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        )
        .with_context(|| format!("cannot create schema {name} at {url}"))?;
        Ok(PgSchema {
            url: url.to_owned(),
            name,
            dropped: false,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Bytes on disk of the schema's tables with their indexes and TOAST
    /// (`pg_total_relation_size`, summed).
    pub(crate) fn bytes(&self) -> anyhow::Result<u64> {
        let out = psql(
            &self.url,
            &format!(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{}' AND c.relkind IN ('r', 'm')",
                self.name
            ),
        )?;
        out.parse()
            .with_context(|| format!("size of schema {}: {out:?}", self.name))
    }

    /// The URL the run's gateways connect with: `--pg-url` with
    /// `application_name` set to the schema's name, so that their backends
    /// can be told from other clients of the same server.
    pub(crate) fn gateway_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}application_name={}", self.url, self.name)
    }

    /// The server processes working for this run: the gateways' backends
    /// and the server's own background processes (WAL writer, checkpointer,
    /// autovacuum…, shared with any other client of the server).
    pub(crate) fn server_pids(&self) -> Vec<u32> {
        let sql = format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{}' \
             OR backend_type <> 'client backend'",
            self.name
        );
        match psql(&self.url, &sql) {
            Ok(out) => out.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            Err(error) => {
                eprintln!("warning: {error:#}");
                Vec::new()
            }
        }
    }

    /// Drops the schema now; an error is reported, not fatal.
    pub(crate) fn drop_now(mut self) {
        self.drop_schema();
    }

    fn drop_schema(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        if let Err(error) = psql(
            &self.url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        ) {
            eprintln!("warning: {error:#}");
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        self.drop_schema();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        let name = schema_name(4242, 3);
        assert_eq!(name, "hotsite_bench_4242_3");
        assert!(name.len() <= 63);
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }
}
