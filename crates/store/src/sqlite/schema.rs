//! Opening a database file: version check, pragmas, schema, and the initial counts.

use rusqlite::Connection;

use super::{Context, Counters};
use crate::error::StoreError;
use crate::provider_id::normalize;
use crate::types::MessageState;

/// The `PRAGMA user_version` this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// Version 1. A fresh file gets it and then every migration, so a new file and an
/// upgraded one are the same (documented at the top of `lib.rs`).
const SCHEMA_V1: &str = "
CREATE TABLE messages (
    id                    INTEGER PRIMARY KEY,
    key                   TEXT NOT NULL UNIQUE,
    source                TEXT NOT NULL,
    destination           TEXT NOT NULL,
    body                  BLOB NOT NULL,
    data_coding           INTEGER NOT NULL,
    state                 TEXT NOT NULL,
    attempts              INTEGER NOT NULL,
    provider_message_id   TEXT,
    site                  TEXT,
    smsc                  TEXT,
    submitted_at_ms       INTEGER,
    submitted_after_event INTEGER,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
);
CREATE INDEX messages_queued ON messages(id) WHERE state = 'Queued';
CREATE INDEX messages_provider ON messages(provider_message_id)
    WHERE provider_message_id IS NOT NULL;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX events_message ON events(message_id);

CREATE TABLE inbound (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    dedupe_key          TEXT NOT NULL UNIQUE,
    provider_message_id TEXT,
    message_state       INTEGER,
    source              TEXT NOT NULL,
    destination         TEXT NOT NULL,
    body                BLOB NOT NULL,
    site                TEXT NOT NULL,
    smsc                TEXT NOT NULL,
    received_at_ms      INTEGER NOT NULL,
    message_id          INTEGER,
    delivered_at_ms     INTEGER,
    attempts            INTEGER NOT NULL,
    next_attempt_at_ms  INTEGER NOT NULL
);
CREATE INDEX inbound_pending ON inbound(id, next_attempt_at_ms)
    WHERE delivered_at_ms IS NULL;
CREATE INDEX inbound_uncorrelated ON inbound(provider_message_id)
    WHERE kind = 'Receipt' AND message_id IS NULL;
";

/// Version 1 → 2: routes (fallback chains, SPEC M11). Existing messages take the
/// default route from its first hop, which is where version 1 sent them.
const MIGRATE_V2: &str = "
ALTER TABLE messages ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN hop INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN email TEXT;
";

/// Version 2 → 3: references allocated per destination (SPEC M16), provider ids
/// compared in their normalized form (SPEC M13), uncorrelated receipts found by
/// every key their id may match under. Existing messages keep the reference they
/// were sent with (`reference` NULL means `id & 0xFFFF`); the normalized keys of
/// existing rows are filled in by [`backfill_v3`].
const MIGRATE_V3: &str = "
ALTER TABLE messages ADD COLUMN reference INTEGER;
ALTER TABLE messages ADD COLUMN provider_key TEXT;
ALTER TABLE messages ADD COLUMN ref_collisions INTEGER NOT NULL DEFAULT 0;
DROP INDEX messages_provider;
CREATE INDEX messages_provider ON messages(provider_key) WHERE provider_key IS NOT NULL;
CREATE TABLE destination_refs (
    destination   TEXT PRIMARY KEY,
    last_ref      INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE receipt_keys (
    key        TEXT NOT NULL,
    inbound_id INTEGER NOT NULL
);
CREATE INDEX receipt_keys_key ON receipt_keys(key);
CREATE INDEX receipt_keys_inbound ON receipt_keys(inbound_id);
DROP INDEX inbound_uncorrelated;
CREATE INDEX inbound_uncorrelated ON inbound(id) WHERE kind = 'Receipt' AND message_id IS NULL;
";

/// Fills the normalized provider ids of rows written before version 3.
fn backfill_v3(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    const DOING: &str = "upgrading the schema from version 2 to 3";
    let messages: Vec<(i64, String)> = tx
        .prepare(
            "SELECT id, provider_message_id FROM messages WHERE provider_message_id IS NOT NULL",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .context(DOING)?;
    for (id, provider_message_id) in messages {
        tx.execute(
            "UPDATE messages SET provider_key = ?2 WHERE id = ?1",
            rusqlite::params![id, normalize(&provider_message_id)],
        )
        .context(DOING)?;
    }
    let receipts: Vec<(i64, String)> = tx
        .prepare(
            "SELECT id, provider_message_id FROM inbound
             WHERE kind = 'Receipt' AND message_id IS NULL AND provider_message_id IS NOT NULL",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .context(DOING)?;
    for (id, provider_message_id) in receipts {
        tx.execute(
            "INSERT INTO receipt_keys (key, inbound_id) VALUES (?1, ?2)",
            rusqlite::params![normalize(&provider_message_id), id],
        )
        .context(DOING)?;
    }
    Ok(())
}

/// Reads the file's schema version. Reading is the first thing done to a file, so a
/// file that is not a database is reported here, before anything is written.
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .context("reading the schema version")
}

/// Refuses a newer file; creates the schema in a fresh one. Runs before any pragma
/// that writes, so a refused file is left untouched.
pub(crate) fn check_and_create(conn: &mut Connection) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("creating the schema")?;
    // Another process may have created or upgraded it between our read and our lock.
    let found_in_tx = version(&tx)?;
    match found_in_tx {
        0 => {
            tx.execute_batch(SCHEMA_V1).context("creating the schema")?;
            tx.execute_batch(MIGRATE_V2)
                .context("creating the schema")?;
            tx.execute_batch(MIGRATE_V3)
                .context("creating the schema")?;
        }
        1 | 2 => {
            if found_in_tx == 1 {
                tx.execute_batch(MIGRATE_V2)
                    .context("upgrading the schema from version 1 to 2")?;
            }
            tx.execute_batch(MIGRATE_V3)
                .context("upgrading the schema from version 2 to 3")?;
            backfill_v3(&tx)?;
        }
        SCHEMA_VERSION => return Ok(()),
        found => {
            return Err(StoreError::Corrupt(format!(
                "reading the schema version: unknown version {found}"
            )))
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .context("writing the schema version")?;
    tx.commit().context("creating the schema")
}

/// Counts messages by state and inbound items: once at open; afterwards every
/// committed transaction moves the counters.
pub(crate) fn count(conn: &Connection) -> Result<Counters, StoreError> {
    let mut counters = Counters::default();
    let mut statement = conn
        .prepare("SELECT state, COUNT(*) FROM messages GROUP BY state")
        .context("counting messages")?;
    let mut rows = statement.query([]).context("counting messages")?;
    while let Some(row) = rows.next().context("counting messages")? {
        let text: String = row.get(0).context("counting messages")?;
        let count: i64 = row.get(1).context("counting messages")?;
        let state = MessageState::parse(&text).ok_or_else(|| {
            StoreError::Corrupt(format!("counting messages: unknown state {text:?}"))
        })?;
        counters.states[state.index()] = count as u64;
    }
    let (total, pending): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE delivered_at_ms IS NULL) FROM inbound",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .context("counting inbound items")?;
    counters.inbound_total = total as u64;
    counters.inbound_pending = pending as u64;
    let uncorrelated: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM inbound INDEXED BY inbound_uncorrelated
             WHERE kind = 'Receipt' AND message_id IS NULL",
            [],
            |row| row.get(0),
        )
        .context("counting uncorrelated receipts")?;
    counters.receipts_uncorrelated = uncorrelated as u64;
    Ok(counters)
}

/// The query plan of `sql` on an empty schema, one detail per line.
#[cfg(test)]
pub(crate) fn plan(sql: &str) -> String {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute_batch(MIGRATE_V2).unwrap();
    conn.execute_batch(MIGRATE_V3).unwrap();
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
    let details = statement
        .query_map(rusqlite::params_from_iter(nulls), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    details.join("\n")
}
