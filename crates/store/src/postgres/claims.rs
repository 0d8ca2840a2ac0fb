//! Claims on shared work (SPEC M17): columns of the rows, taken with
//! `FOR UPDATE SKIP LOCKED`, each call one transaction committed before it
//! answers (a claim is durable, so a gateway that restarts or a peer that reads
//! it right after sees it). They run on pooled connections, beside the writer.

use std::collections::HashSet;

use deadpool_postgres::Object;
use futures_util::future::{try_join3, try_join4};

use super::error::Context;
use super::read::{limit_param, pending_row, queued_row, PENDING_COLUMNS, QUEUED_COLUMNS};
use crate::error::StoreError;
use crate::types::{Lease, MessageId, PendingInbound, QueuedMessage};

/// Runs `statement` in its own transaction, BEGIN and COMMIT pipelined with it:
/// one round trip. An error in the statement makes the COMMIT a rollback.
pub(crate) async fn in_transaction(
    client: &Object,
    doing: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.context(doing)?;
    let begin = format!("BEGIN; {}", super::options::index_only_plans(true));
    let (_, rows, _) = try_join3(
        client.batch_execute(&begin),
        client.query(&statement, params),
        client.batch_execute("COMMIT"),
    )
    .await
    .context(doing)?;
    Ok(rows)
}

pub(crate) async fn claim_queued(
    client: &Object,
    lease: &Lease,
    after: Option<MessageId>,
    limit: usize,
) -> Result<Vec<QueuedMessage>, StoreError> {
    const DOING: &str = "claiming queued messages";
    // Rows another transaction holds (a claim, a submit being recorded) are
    // skipped, not waited for: they are someone's work right now. The pick is a
    // CTE so it runs once (as a subquery of the UPDATE it could run per row).
    let sql = format!(
        "WITH picked AS (SELECT id AS picked_id FROM messages
                         WHERE state = 'Queued' AND id > $3
                           AND (claim_until_ms IS NULL OR claim_until_ms < $4)
                         ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)
         UPDATE messages SET claimed_by = $1, claim_until_ms = $2
         FROM picked WHERE messages.id = picked.picked_id
         RETURNING {QUEUED_COLUMNS}"
    );
    let after = after.map_or(i64::MIN, |id| id.0);
    let rows = in_transaction(
        client,
        DOING,
        &sql,
        &[
            &lease.owner,
            &lease.until_ms(),
            &after,
            &lease.now_ms,
            &limit_param(limit),
        ],
    )
    .await?;
    let mut claimed = rows
        .iter()
        .map(|row| queued_row(row, DOING))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|message| message.id);
    Ok(claimed)
}

pub(crate) async fn renew_queued(
    client: &Object,
    lease: &Lease,
    ids: &[MessageId],
) -> Result<Vec<MessageId>, StoreError> {
    const DOING: &str = "renewing claims on messages";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = in_transaction(
        client,
        DOING,
        "UPDATE messages SET claim_until_ms = GREATEST(claim_until_ms, $3)
         WHERE id = ANY($1::bigint[]) AND state = 'Queued' AND claimed_by = $2
         RETURNING id",
        &[&raw, &lease.owner, &lease.until_ms()],
    )
    .await?;
    let renewed = ids_of(&rows, DOING)?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| renewed.contains(&id.0))
        .collect())
}

pub(crate) async fn claim_inbound(
    client: &Object,
    lease: &Lease,
    limit: usize,
) -> Result<Vec<PendingInbound>, StoreError> {
    const DOING: &str = "claiming inbound items";
    let sql = format!(
        "WITH picked AS (SELECT id AS picked_id FROM inbound
                         WHERE delivered_at_ms IS NULL AND next_attempt_at_ms <= $3
                           AND (claim_until_ms IS NULL OR claim_until_ms < $3)
                         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
         UPDATE inbound SET claimed_by = $1, claim_until_ms = $2
         FROM picked WHERE inbound.id = picked.picked_id
         RETURNING {PENDING_COLUMNS}"
    );
    let rows = in_transaction(
        client,
        DOING,
        &sql,
        &[
            &lease.owner,
            &lease.until_ms(),
            &lease.now_ms,
            &limit_param(limit),
        ],
    )
    .await?;
    let mut claimed = rows
        .iter()
        .map(|row| pending_row(row, DOING))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|item| item.id);
    Ok(claimed)
}

pub(crate) async fn renew_inbound(
    client: &Object,
    lease: &Lease,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    const DOING: &str = "renewing claims on inbound items";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = in_transaction(
        client,
        DOING,
        "UPDATE inbound SET claim_until_ms = GREATEST(claim_until_ms, $3)
         WHERE id = ANY($1::bigint[]) AND delivered_at_ms IS NULL AND claimed_by = $2
         RETURNING id",
        &[&ids, &lease.owner, &lease.until_ms()],
    )
    .await?;
    let renewed = ids_of(&rows, DOING)?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| renewed.contains(id))
        .collect())
}

pub(crate) async fn release(client: &Object, owner: &str) -> Result<(), StoreError> {
    const DOING: &str = "releasing claims";
    let messages = client
        .prepare_cached(
            "UPDATE messages SET claimed_by = NULL, claim_until_ms = NULL
             WHERE state = 'Queued' AND claimed_by = $1",
        )
        .await
        .context(DOING)?;
    let inbound = client
        .prepare_cached(
            "UPDATE inbound SET claimed_by = NULL, claim_until_ms = NULL
             WHERE delivered_at_ms IS NULL AND claimed_by = $1",
        )
        .await
        .context(DOING)?;
    try_join4(
        client.batch_execute("BEGIN"),
        client.execute(&messages, &[&owner]),
        client.execute(&inbound, &[&owner]),
        client.batch_execute("COMMIT"),
    )
    .await
    .context(DOING)?;
    Ok(())
}

fn ids_of(rows: &[tokio_postgres::Row], doing: &str) -> Result<HashSet<i64>, StoreError> {
    rows.iter()
        .map(|row| row.try_get::<_, i64>(0))
        .collect::<Result<_, _>>()
        .context(doing)
}
