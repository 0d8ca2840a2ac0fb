//! Queries run on the reader threads' connections.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Context;
use crate::error::StoreError;
use crate::types::{
    EventRecord, InboundKind, MessageId, MessageState, MessageView, PendingInbound, QueuedMessage,
};

/// Which message to read.
pub(crate) enum By<'a> {
    Id(MessageId),
    Key(&'a str),
}

// `state = 'Queued'` is written out (not a parameter) so the partial index applies.
const QUEUED_AFTER: &str = "SELECT id, source, destination, body, data_coding, attempts,
    route, hop, email, reference FROM messages WHERE state = 'Queued' AND id > ?1 ORDER BY id LIMIT ?2";

/// The longest-waiting queued message's acceptance time: the first entry of
/// the partial index (ids ascend in acceptance order), one row looked up.
const OLDEST_QUEUED: &str = "SELECT created_at_ms FROM messages INDEXED BY messages_queued
    WHERE state = 'Queued' ORDER BY id LIMIT 1";

const MESSAGE_COLUMNS: &str = "SELECT id, key, source, destination, body, data_coding, state,
    attempts, provider_message_id, site, smsc, created_at_ms, updated_at_ms,
    submitted_at_ms, submitted_after_event, route, hop, email FROM messages";

const EVENTS: &str = "SELECT id, at_ms, kind, detail FROM events WHERE message_id = ?1 ORDER BY id";

const PENDING_INBOUND: &str = "SELECT id, kind, provider_message_id, message_state,
    message_id, source, destination, body, site, smsc, attempts, received_at_ms
    FROM inbound INDEXED BY inbound_pending
    WHERE delivered_at_ms IS NULL AND next_attempt_at_ms <= ?1 ORDER BY id LIMIT ?2";

pub(crate) fn queued_after(
    conn: &Connection,
    after: Option<MessageId>,
    limit: usize,
) -> Result<Vec<QueuedMessage>, StoreError> {
    const DOING: &str = "reading the queue";
    let mut statement = conn.prepare_cached(QUEUED_AFTER).context(DOING)?;
    let after = after.map_or(i64::MIN, |id| id.0);
    let rows = statement
        .query_map(params![after, limit_param(limit)], |row| {
            let id = MessageId(row.get(0)?);
            Ok(QueuedMessage {
                id,
                source: row.get(1)?,
                destination: row.get(2)?,
                body: row.get(3)?,
                data_coding: row.get(4)?,
                reference: match row.get::<_, Option<i64>>(9)? {
                    None => Some(id.legacy_reference()),
                    Some(reference) => u16::try_from(reference).ok(),
                },
                attempts: row.get(5)?,
                route: row.get(6)?,
                hop: row.get(7)?,
                email: row.get(8)?,
            })
        })
        .context(DOING)?;
    rows.collect::<Result<_, _>>().context(DOING)
}

pub(crate) fn message(conn: &Connection, by: By<'_>) -> Result<Option<MessageView>, StoreError> {
    const DOING: &str = "reading a message";
    // One snapshot for the message and its events.
    let tx = conn.unchecked_transaction().context(DOING)?;
    let found = match by {
        By::Id(id) => tx
            .prepare_cached(&format!("{MESSAGE_COLUMNS} WHERE id = ?1"))
            .context(DOING)?
            .query_row([id.0], message_row)
            .optional(),
        By::Key(key) => tx
            .prepare_cached(&format!("{MESSAGE_COLUMNS} WHERE key = ?1"))
            .context(DOING)?
            .query_row([key], message_row)
            .optional(),
    }
    .context(DOING)?;
    let Some((mut view, state, submitted)) = found else {
        return Ok(None);
    };
    view.state = MessageState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("{DOING}: unknown state {state:?}")))?;

    let mut submitted_line = submitted.map(|(at_ms, after_event)| {
        let detail = format!(
            "site={} smsc={} provider_message_id={}",
            view.site.as_deref().unwrap_or_default(),
            view.smsc.as_deref().unwrap_or_default(),
            view.provider_message_id.as_deref().unwrap_or_default(),
        );
        (
            after_event,
            EventRecord {
                at_ms,
                kind: "submitted".to_owned(),
                detail,
            },
        )
    });
    view.events.push(EventRecord {
        at_ms: view.created_at_ms,
        kind: "accepted".to_owned(),
        detail: format!("key={}", view.key),
    });
    let mut statement = tx.prepare_cached(EVENTS).context(DOING)?;
    let mut rows = statement.query([view.id.0]).context(DOING)?;
    while let Some(row) = rows.next().context(DOING)? {
        let event_id: i64 = row.get(0).context(DOING)?;
        if submitted_line
            .as_ref()
            .is_some_and(|(after_event, _)| event_id > *after_event)
        {
            let (_, line) = submitted_line.take().expect("checked just above");
            view.events.push(line);
        }
        view.events.push(EventRecord {
            at_ms: row.get(1).context(DOING)?,
            kind: row.get(2).context(DOING)?,
            detail: row.get(3).context(DOING)?,
        });
    }
    if let Some((_, line)) = submitted_line {
        view.events.push(line);
    }
    Ok(Some(view))
}

type MessageRow = (MessageView, String, Option<(i64, i64)>);

fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    let view = MessageView {
        id: MessageId(row.get(0)?),
        key: row.get(1)?,
        source: row.get(2)?,
        destination: row.get(3)?,
        body: row.get(4)?,
        data_coding: row.get(5)?,
        state: MessageState::Queued,
        attempts: row.get(7)?,
        route: row.get(15)?,
        hop: row.get(16)?,
        email: row.get(17)?,
        provider_message_id: row.get(8)?,
        site: row.get(9)?,
        smsc: row.get(10)?,
        created_at_ms: row.get(11)?,
        updated_at_ms: row.get(12)?,
        events: Vec::new(),
    };
    let submitted_at: Option<i64> = row.get(13)?;
    let after_event: Option<i64> = row.get(14)?;
    Ok((view, row.get(6)?, submitted_at.zip(after_event)))
}

pub(crate) fn pending_inbound(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<PendingInbound>, StoreError> {
    const DOING: &str = "reading pending inbound items";
    let mut statement = conn.prepare_cached(PENDING_INBOUND).context(DOING)?;
    let rows = statement
        .query_map(params![now_ms, limit_param(limit)], |row| {
            let kind: String = row.get(1)?;
            Ok((
                kind,
                PendingInbound {
                    id: row.get(0)?,
                    kind: InboundKind::Mo,
                    provider_message_id: row.get(2)?,
                    message_state: row.get(3)?,
                    message_id: row.get::<_, Option<i64>>(4)?.map(MessageId),
                    source: row.get(5)?,
                    destination: row.get(6)?,
                    body: row.get(7)?,
                    site: row.get(8)?,
                    smsc: row.get(9)?,
                    attempts: row.get(10)?,
                    received_at_ms: row.get(11)?,
                },
            ))
        })
        .context(DOING)?;
    let mut pending = Vec::new();
    for row in rows {
        let (kind, mut item) = row.context(DOING)?;
        item.kind = InboundKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("{DOING}: unknown kind {kind:?}")))?;
        pending.push(item);
    }
    Ok(pending)
}

/// The ids in `lo..=hi` still `Queued`: a page read before a write committed
/// may list a message that has left the queue since (see `claim_queued`).
pub(crate) fn queued_ids(conn: &Connection, lo: i64, hi: i64) -> Result<Vec<i64>, StoreError> {
    const DOING: &str = "checking claimed messages";
    let mut statement = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE state = 'Queued' AND id >= ?1 AND id <= ?2 ORDER BY id",
        )
        .context(DOING)?;
    let rows = statement
        .query_map(params![lo, hi], |row| row.get(0))
        .context(DOING)?;
    rows.collect::<Result<_, _>>().context(DOING)
}

/// The ids in `lo..=hi` still undelivered and due at `now_ms`.
pub(crate) fn due_ids(
    conn: &Connection,
    now_ms: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<i64>, StoreError> {
    const DOING: &str = "checking claimed inbound items";
    let mut statement = conn
        .prepare_cached(
            "SELECT id FROM inbound INDEXED BY inbound_pending WHERE delivered_at_ms IS NULL
             AND next_attempt_at_ms <= ?1 AND id >= ?2 AND id <= ?3 ORDER BY id",
        )
        .context(DOING)?;
    let rows = statement
        .query_map(params![now_ms, lo, hi], |row| row.get(0))
        .context(DOING)?;
    rows.collect::<Result<_, _>>().context(DOING)
}

/// See [`crate::StoreStats::oldest_queued_at_ms`].
pub(crate) fn oldest_queued_at_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    const DOING: &str = "reading the queue's oldest message";
    conn.prepare_cached(OLDEST_QUEUED)
        .context(DOING)?
        .query_row([], |row| row.get(0))
        .optional()
        .context(DOING)
}

pub(crate) fn inbound_message(conn: &Connection, id: i64) -> Result<Option<MessageId>, StoreError> {
    const DOING: &str = "reading an inbound item";
    let found: Option<Option<i64>> = conn
        .prepare_cached("SELECT message_id FROM inbound WHERE id = ?1")
        .context(DOING)?
        .query_row([id], |row| row.get(0))
        .optional()
        .context(DOING)?;
    match found {
        Some(message) => Ok(message.map(MessageId)),
        None => Err(StoreError::UnknownInbound(id)),
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::schema::plan;

    /// Paging the queue and the pending inbound items, and finding the queue's
    /// oldest message (each scrape of `/metrics`), walk a partial index in id
    /// order: no sort, no scan of delivered or submitted rows.
    #[test]
    fn paging_queries_walk_partial_indexes() {
        for (sql, index) in [
            (QUEUED_AFTER, "messages_queued"),
            (OLDEST_QUEUED, "messages_queued"),
            (PENDING_INBOUND, "inbound_pending"),
            (EVENTS, "events_message"),
        ] {
            let plan = plan(sql);
            assert!(plan.contains(index), "{sql}\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
        }
    }
}
