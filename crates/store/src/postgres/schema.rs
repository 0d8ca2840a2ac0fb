//! Creating and checking the schema at connect (documented in `lib.rs`).

use tokio_postgres::Client;

use super::error::Context;
use crate::error::StoreError;

/// The `schema_version` this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Version 1: the SQLite version 3 tables and columns, with PostgreSQL types,
/// plus the lease columns (SPEC M17) and the per-writer counters. `{s}` is the
/// schema. Keys compare byte-wise (`COLLATE "C"`), as in SQLite: the windowed
/// MO range scan and the lock order depend on it.
const SCHEMA_V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.schema_version (version BIGINT NOT NULL);
CREATE TABLE {s}.messages (
    id                    BIGSERIAL PRIMARY KEY,
    key                   TEXT COLLATE "C" NOT NULL UNIQUE,
    source                TEXT NOT NULL,
    destination           TEXT COLLATE "C" NOT NULL,
    body                  BYTEA NOT NULL,
    data_coding           BIGINT NOT NULL,
    state                 TEXT NOT NULL,
    attempts              BIGINT NOT NULL,
    provider_message_id   TEXT,
    site                  TEXT,
    smsc                  TEXT,
    submitted_at_ms       BIGINT,
    submitted_after_event BIGINT,
    created_at_ms         BIGINT NOT NULL,
    updated_at_ms         BIGINT NOT NULL,
    route                 TEXT NOT NULL DEFAULT '',
    hop                   BIGINT NOT NULL DEFAULT 0,
    email                 TEXT,
    reference             BIGINT,
    provider_key          TEXT COLLATE "C",
    ref_collisions        BIGINT NOT NULL DEFAULT 0,
    claimed_by            TEXT,
    claim_until_ms        BIGINT
);
CREATE INDEX messages_queued ON {s}.messages (id) WHERE state = 'Queued';
CREATE INDEX messages_provider ON {s}.messages (provider_key, id)
    WHERE provider_key IS NOT NULL;
CREATE INDEX messages_claimed ON {s}.messages (claimed_by) WHERE claimed_by IS NOT NULL;

CREATE TABLE {s}.destination_refs (
    destination   TEXT COLLATE "C" PRIMARY KEY,
    last_ref      BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE {s}.receipt_keys (
    key        TEXT COLLATE "C" NOT NULL,
    inbound_id BIGINT NOT NULL
);
CREATE INDEX receipt_keys_key ON {s}.receipt_keys (key);
CREATE INDEX receipt_keys_inbound ON {s}.receipt_keys (inbound_id);

CREATE TABLE {s}.events (
    id         BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX events_message ON {s}.events (message_id, id);

CREATE TABLE {s}.inbound (
    id                  BIGSERIAL PRIMARY KEY,
    kind                TEXT NOT NULL,
    dedupe_key          TEXT COLLATE "C" NOT NULL UNIQUE,
    provider_message_id TEXT,
    message_state       BIGINT,
    source              TEXT NOT NULL,
    destination         TEXT NOT NULL,
    body                BYTEA NOT NULL,
    site                TEXT NOT NULL,
    smsc                TEXT NOT NULL,
    received_at_ms      BIGINT NOT NULL,
    message_id          BIGINT,
    delivered_at_ms     BIGINT,
    attempts            BIGINT NOT NULL,
    next_attempt_at_ms  BIGINT NOT NULL,
    claimed_by          TEXT,
    claim_until_ms      BIGINT
);
CREATE INDEX inbound_pending ON {s}.inbound (id, next_attempt_at_ms)
    WHERE delivered_at_ms IS NULL;
CREATE INDEX inbound_uncorrelated ON {s}.inbound (id)
    WHERE kind = 'Receipt' AND message_id IS NULL;
CREATE INDEX inbound_claimed ON {s}.inbound (claimed_by) WHERE claimed_by IS NOT NULL;

CREATE TABLE {s}.counters (
    writer TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  BIGINT NOT NULL,
    PRIMARY KEY (writer, name)
);
CREATE SEQUENCE {s}.writers;
"#;

/// Refuses a newer schema; creates a missing one. Runs in one transaction under
/// an advisory lock, so two gateways starting at once create it once; a refused
/// schema is left exactly as it was.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    const DOING: &str = "checking the schema version";
    let tx = client.transaction().await.context(DOING)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("hotsite-schema/{schema}")],
    )
    .await
    .context(DOING)?;
    let table: Option<String> = tx
        .query_one(
            "SELECT to_regclass($1)::text",
            &[&format!("{schema}.schema_version")],
        )
        .await
        .context(DOING)?
        .get(0);
    let found: i64 = match table {
        None => 0,
        Some(_) => tx
            .query_one(
                &format!("SELECT COALESCE(MAX(version), 0) FROM {schema}.schema_version"),
                &[],
            )
            .await
            .context(DOING)?
            .get(0),
    };
    if found > SCHEMA_VERSION {
        // Dropping the transaction rolls it back: nothing was written.
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return tx.commit().await.context(DOING);
    }
    if found != 0 {
        return Err(StoreError::Corrupt(format!(
            "{DOING}: unknown version {found} in {schema}.schema_version"
        )));
    }
    const CREATING: &str = "creating the schema";
    tx.batch_execute(&SCHEMA_V1.replace("{s}", schema))
        .await
        .context(CREATING)?;
    tx.execute(
        &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
        &[&SCHEMA_VERSION],
    )
    .await
    .context(CREATING)?;
    tx.commit().await.context(CREATING)
}

/// A name for this store's writer in `counters`, unique in the schema.
pub(crate) async fn writer_name(client: &Client) -> Result<String, StoreError> {
    let id: i64 = client
        .query_one("SELECT nextval('writers')", &[])
        .await
        .context("registering the writer")?
        .get(0);
    Ok(format!("w{id}"))
}

/// Folds every writer's counter rows into the `''` row, so the table does not
/// grow by a row set per gateway start. Totals are unchanged (one transaction;
/// a live writer upserts its rows again). Housekeeping: a failure is logged.
pub(crate) async fn fold_counters(client: &Client) {
    let result = client
        .batch_execute(
            "WITH gone AS (DELETE FROM counters WHERE writer <> '' RETURNING name, value)
             INSERT INTO counters (writer, name, value)
             SELECT '', name, SUM(value)::bigint FROM gone GROUP BY name
             ON CONFLICT (writer, name) DO UPDATE SET value = counters.value + EXCLUDED.value",
        )
        .await;
    if let Err(error) = result {
        tracing::debug!(%error, "folding the store's counters failed; left for the next start");
    }
}
