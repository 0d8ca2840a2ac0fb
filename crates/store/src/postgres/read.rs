//! Queries run on the read pool's connections: one statement each, so each sees
//! one snapshot of the committed state.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::error::Context;
use crate::error::StoreError;
use crate::types::{
    EventRecord, InboundKind, MessageId, MessageState, MessageView, PendingInbound, QueuedMessage,
    StoreStats,
};

// `state = 'Queued'` is written out (not a parameter) so the partial index applies.
pub(crate) const QUEUED_COLUMNS: &str =
    "id, source, destination, body, data_coding, attempts, route, hop, email, reference";

const QUEUED_AFTER: &str = "SELECT id, source, destination, body, data_coding, attempts,
    route, hop, email, reference FROM messages
    WHERE state = 'Queued' AND id > $1 ORDER BY id LIMIT $2";

/// The message and its events in one statement (one snapshot): one row per event,
/// or one row with NULL event columns.
const MESSAGE_WITH_EVENTS: &str = "SELECT m.id, m.key, m.source, m.destination, m.body,
    m.data_coding, m.state, m.attempts, m.provider_message_id, m.site, m.smsc,
    m.created_at_ms, m.updated_at_ms, m.submitted_at_ms, m.submitted_after_event, m.route,
    m.hop, m.email, e.id, e.at_ms, e.kind, e.detail
    FROM messages AS m LEFT JOIN events AS e ON e.message_id = m.id
    WHERE {by} ORDER BY e.id";

pub(crate) const PENDING_COLUMNS: &str = "id, kind, provider_message_id, message_state,
    message_id, source, destination, body, site, smsc, attempts, received_at_ms";

const PENDING_INBOUND: &str = "SELECT id, kind, provider_message_id, message_state,
    message_id, source, destination, body, site, smsc, attempts, received_at_ms
    FROM inbound WHERE delivered_at_ms IS NULL AND next_attempt_at_ms <= $1
    ORDER BY id LIMIT $2";

const STATS: &str = "SELECT name, SUM(value)::bigint FROM counters GROUP BY name";

/// The longest-waiting queued message's acceptance time: the first entry of
/// the partial index `messages_queued` (ids ascend in acceptance order), one
/// row looked up. Run with the hot path's index-only plans, so lagging
/// statistics never turn it into a scan of the table per scrape.
pub(crate) const OLDEST_QUEUED: &str = "SELECT created_at_ms FROM messages
    WHERE state = 'Queued' ORDER BY id LIMIT 1";

/// Which message to read.
pub(crate) enum By {
    Id(MessageId),
    Key(String),
}

pub(crate) async fn queued_after(
    client: &Object,
    after: Option<MessageId>,
    limit: usize,
) -> Result<Vec<QueuedMessage>, StoreError> {
    const DOING: &str = "reading the queue";
    let statement = client.prepare_cached(QUEUED_AFTER).await.context(DOING)?;
    let after = after.map_or(i64::MIN, |id| id.0);
    let rows = client
        .query(&statement, &[&after, &limit_param(limit)])
        .await
        .context(DOING)?;
    rows.iter().map(|row| queued_row(row, DOING)).collect()
}

/// A row of [`QUEUED_COLUMNS`].
pub(crate) fn queued_row(row: &Row, doing: &str) -> Result<QueuedMessage, StoreError> {
    let id = MessageId(row.try_get(0).context(doing)?);
    let reference: Option<i64> = row.try_get(9).context(doing)?;
    Ok(QueuedMessage {
        id,
        source: row.try_get(1).context(doing)?,
        destination: row.try_get(2).context(doing)?,
        body: row.try_get(3).context(doing)?,
        data_coding: small(row.try_get(4).context(doing)?, doing)?,
        reference: match reference {
            None => Some(id.legacy_reference()),
            Some(reference) => u16::try_from(reference).ok(),
        },
        attempts: small(row.try_get(5).context(doing)?, doing)?,
        route: row.try_get(6).context(doing)?,
        hop: small(row.try_get(7).context(doing)?, doing)?,
        email: row.try_get(8).context(doing)?,
    })
}

pub(crate) async fn message(client: &Object, by: By) -> Result<Option<MessageView>, StoreError> {
    const DOING: &str = "reading a message";
    let rows = match &by {
        By::Id(id) => {
            let sql = MESSAGE_WITH_EVENTS.replace("{by}", "m.id = $1");
            let statement = client.prepare_cached(&sql).await.context(DOING)?;
            client.query(&statement, &[&id.0]).await
        }
        By::Key(key) => {
            let sql = MESSAGE_WITH_EVENTS.replace("{by}", "m.key = $1");
            let statement = client.prepare_cached(&sql).await.context(DOING)?;
            client.query(&statement, &[key]).await
        }
    }
    .context(DOING)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let state: String = first.try_get(6).context(DOING)?;
    let mut view = MessageView {
        id: MessageId(first.try_get(0).context(DOING)?),
        key: first.try_get(1).context(DOING)?,
        source: first.try_get(2).context(DOING)?,
        destination: first.try_get(3).context(DOING)?,
        body: first.try_get(4).context(DOING)?,
        data_coding: small(first.try_get(5).context(DOING)?, DOING)?,
        state: MessageState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("{DOING}: unknown state {state:?}")))?,
        attempts: small(first.try_get(7).context(DOING)?, DOING)?,
        provider_message_id: first.try_get(8).context(DOING)?,
        site: first.try_get(9).context(DOING)?,
        smsc: first.try_get(10).context(DOING)?,
        created_at_ms: first.try_get(11).context(DOING)?,
        updated_at_ms: first.try_get(12).context(DOING)?,
        route: first.try_get(15).context(DOING)?,
        hop: small(first.try_get(16).context(DOING)?, DOING)?,
        email: first.try_get(17).context(DOING)?,
        events: Vec::with_capacity(rows.len() + 2),
    };
    let submitted_at: Option<i64> = first.try_get(13).context(DOING)?;
    let after_event: Option<i64> = first.try_get(14).context(DOING)?;
    // `accepted` and `submitted` are derived from columns (see the crate docs).
    let mut submitted_line = submitted_at.zip(after_event).map(|(at_ms, after_event)| {
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
    for row in &rows {
        let Some(event_id) = row.try_get::<_, Option<i64>>(18).context(DOING)? else {
            continue;
        };
        if submitted_line
            .as_ref()
            .is_some_and(|(after_event, _)| event_id > *after_event)
        {
            if let Some((_, line)) = submitted_line.take() {
                view.events.push(line);
            }
        }
        view.events.push(EventRecord {
            at_ms: row.try_get(19).context(DOING)?,
            kind: row.try_get(20).context(DOING)?,
            detail: row.try_get(21).context(DOING)?,
        });
    }
    if let Some((_, line)) = submitted_line {
        view.events.push(line);
    }
    Ok(Some(view))
}

pub(crate) async fn pending_inbound(
    client: &Object,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<PendingInbound>, StoreError> {
    const DOING: &str = "reading pending inbound items";
    let statement = client
        .prepare_cached(PENDING_INBOUND)
        .await
        .context(DOING)?;
    let rows = client
        .query(&statement, &[&now_ms, &limit_param(limit)])
        .await
        .context(DOING)?;
    rows.iter().map(|row| pending_row(row, DOING)).collect()
}

/// A row of [`PENDING_COLUMNS`].
pub(crate) fn pending_row(row: &Row, doing: &str) -> Result<PendingInbound, StoreError> {
    let kind: String = row.try_get(1).context(doing)?;
    let message_state: Option<i64> = row.try_get(3).context(doing)?;
    Ok(PendingInbound {
        id: row.try_get(0).context(doing)?,
        kind: InboundKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("{doing}: unknown kind {kind:?}")))?,
        provider_message_id: row.try_get(2).context(doing)?,
        message_state: message_state.map(|value| small(value, doing)).transpose()?,
        message_id: row
            .try_get::<_, Option<i64>>(4)
            .context(doing)?
            .map(MessageId),
        source: row.try_get(5).context(doing)?,
        destination: row.try_get(6).context(doing)?,
        body: row.try_get(7).context(doing)?,
        site: row.try_get(8).context(doing)?,
        smsc: row.try_get(9).context(doing)?,
        attempts: small(row.try_get(10).context(doing)?, doing)?,
        received_at_ms: row.try_get(11).context(doing)?,
    })
}

pub(crate) async fn inbound_message(
    client: &Object,
    id: i64,
) -> Result<Option<MessageId>, StoreError> {
    const DOING: &str = "reading an inbound item";
    let statement = client
        .prepare_cached("SELECT message_id FROM inbound WHERE id = $1")
        .await
        .context(DOING)?;
    let row = client.query_opt(&statement, &[&id]).await.context(DOING)?;
    match row {
        Some(row) => Ok(row
            .try_get::<_, Option<i64>>(0)
            .context(DOING)?
            .map(MessageId)),
        None => Err(StoreError::UnknownInbound(id)),
    }
}

/// The counts every writer keeps in `counters` (commits and `storage_full` are
/// the handle's own, filled in by the caller).
pub(crate) async fn stats(client: &Object) -> Result<StoreStats, StoreError> {
    const DOING: &str = "reading the counters";
    let statement = client.prepare_cached(STATS).await.context(DOING)?;
    let rows = client.query(&statement, &[]).await.context(DOING)?;
    let mut states = [0u64; 7];
    let mut stats = StoreStats::default();
    for row in rows {
        let name: String = row.try_get(0).context(DOING)?;
        let value: Option<i64> = row.try_get(1).context(DOING)?;
        let value = u64::try_from(value.unwrap_or(0)).unwrap_or(0);
        match (name.as_str(), MessageState::parse(&name)) {
            (_, Some(state)) => states[state.index()] = value,
            ("inbound_pending", None) => stats.inbound_pending = value,
            ("inbound_total", None) => stats.inbound_total = value,
            ("receipts_uncorrelated", None) => stats.receipts_uncorrelated = value,
            _ => {}
        }
    }
    let state = |state: MessageState| states[state.index()];
    stats.queued = state(MessageState::Queued);
    stats.submitted = state(MessageState::Submitted);
    stats.failed = state(MessageState::Failed);
    stats.final_states = MessageState::ALL
        .into_iter()
        .filter(|state| state.is_final())
        .map(state)
        .sum();
    stats.oldest_queued_at_ms = oldest_queued_at_ms(client).await?;
    Ok(stats)
}

/// See [`StoreStats::oldest_queued_at_ms`].
async fn oldest_queued_at_ms(client: &Object) -> Result<Option<i64>, StoreError> {
    const DOING: &str = "reading the queue's oldest message";
    let rows = super::claims::in_transaction(client, DOING, OLDEST_QUEUED, &[]).await?;
    rows.first()
        .map(|row| row.try_get(0))
        .transpose()
        .context(DOING)
}

pub(crate) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A stored BIGINT that must fit a smaller Rust type (data coding, attempts…).
pub(crate) fn small<T: TryFrom<i64>>(value: i64, doing: &str) -> Result<T, StoreError> {
    T::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{doing}: value {value} out of range")))
}
