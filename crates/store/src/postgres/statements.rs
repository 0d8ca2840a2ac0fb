//! The writer's statements, prepared once per connection. Batches are set-based:
//! a statement takes arrays (`unnest`) and handles every row of a batch, so a
//! group commit costs a handful of round trips, not one per message.

use tokio_postgres::{Client, Statement};

macro_rules! statements {
    ($($(#[doc = $doc:literal])* $name:ident = $sql:expr;)*) => {
        /// Every statement the writer runs, prepared on its connection.
        pub(crate) struct Statements {
            $($(#[doc = $doc])* pub(crate) $name: Statement,)*
        }

        impl Statements {
            pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
                Ok(Statements { $($name: client.prepare($sql).await?,)* })
            }
        }

        #[cfg(test)]
        pub(crate) const ALL: &[(&str, &str)] = &[$((stringify!($name), $sql),)*];
    };
}

statements! {
    /// Advisory locks on hashed keys, taken in sorted order (no deadlock between
    /// two writers taking the same keys). Held until the transaction ends.
    lock_keys = "SELECT pg_advisory_xact_lock(k) FROM
        (SELECT DISTINCT hashtextextended(x, 0) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS keys";
    /// Row locks on the messages a batch updates, in id order; answers those that exist.
    lock_messages = "SELECT id FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE";
    ids_by_key = "SELECT key, id FROM messages WHERE key = ANY($1::text[])";
    /// Locks (creating if needed) the destinations' reference counters in sorted
    /// order and answers them; a row created here has `updated_at_ms` = i64::MIN,
    /// which means "none".
    lock_destinations = r#"INSERT INTO destination_refs (destination, last_ref, updated_at_ms)
        SELECT d, 0, -9223372036854775808 FROM unnest($1::text[]) AS d ORDER BY d COLLATE "C"
        ON CONFLICT (destination) DO UPDATE SET last_ref = destination_refs.last_ref
        RETURNING destination, last_ref, updated_at_ms"#;
    write_destinations = "UPDATE destination_refs AS r SET last_ref = u.last_ref,
        updated_at_ms = u.updated_at_ms
        FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(destination, last_ref, updated_at_ms)
        WHERE r.destination = u.destination";
    /// Ids are taken in batch order; a key stored meanwhile by another gateway is
    /// skipped (and answered as existing).
    insert_messages = "INSERT INTO messages (key, source, destination, body, data_coding, route,
        email, state, attempts, created_at_ms, updated_at_ms, reference)
        SELECT key, source, destination, body, data_coding, route, email, 'Queued', 0, at, at, reference
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::text[],
                    $7::text[], $8::bigint[], $9::bigint[]) WITH ORDINALITY
            AS u(key, source, destination, body, data_coding, route, email, at, reference, ord)
        ORDER BY ord
        ON CONFLICT (key) DO NOTHING
        RETURNING key, id";
    /// Records submit responses on queued messages unless another message to the
    /// destination has the provider key (SPEC M16). `submitted_after_event` is the
    /// message's last event: the row is locked (by `lock_messages`, an earlier
    /// statement), so every event of it committed elsewhere is in this snapshot.
    submit_unless_colliding = "UPDATE messages AS m SET state = 'Submitted',
        provider_message_id = u.provider_message_id, site = u.site, smsc = u.smsc,
        submitted_at_ms = u.at,
        submitted_after_event = (SELECT COALESCE(MAX(e.id), 0) FROM events AS e WHERE e.message_id = m.id),
        updated_at_ms = GREATEST(m.updated_at_ms, u.at), provider_key = u.key,
        claimed_by = NULL, claim_until_ms = NULL
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
            AS u(id, provider_message_id, site, smsc, at, key)
        WHERE m.id = u.id AND m.state = 'Queued'
          AND NOT EXISTS (SELECT 1 FROM messages AS other WHERE other.provider_key = u.key
                          AND other.id <> u.id AND other.destination = m.destination)
        RETURNING m.id";
    /// As `submit_unless_colliding`, without the collision check.
    submit = "UPDATE messages AS m SET state = 'Submitted',
        provider_message_id = u.provider_message_id, site = u.site, smsc = u.smsc,
        submitted_at_ms = u.at,
        submitted_after_event = (SELECT COALESCE(MAX(e.id), 0) FROM events AS e WHERE e.message_id = m.id),
        updated_at_ms = GREATEST(m.updated_at_ms, u.at), provider_key = u.key,
        claimed_by = NULL, claim_until_ms = NULL
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
            AS u(id, provider_message_id, site, smsc, at, key)
        WHERE m.id = u.id AND m.state = 'Queued'
        RETURNING m.id";
    /// Receipts stored uncorrelated under any of these keys, oldest first.
    stored_receipts = "SELECT rk.key, i.id, i.message_state, i.site, i.smsc, i.received_at_ms,
        i.provider_message_id
        FROM receipt_keys AS rk JOIN inbound AS i ON i.id = rk.inbound_id
        WHERE rk.key = ANY($1::text[]) AND i.message_id IS NULL ORDER BY i.id";
    /// Correlated at last: offered to the application now, with its message.
    /// Answers those this transaction correlated (not another gateway first).
    correlate = "UPDATE inbound AS i SET message_id = u.message_id,
        next_attempt_at_ms = LEAST(i.next_attempt_at_ms, u.at)
        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, message_id, at)
        WHERE i.id = u.id AND i.message_id IS NULL
        RETURNING i.id";
    forget_receipt_keys = "DELETE FROM receipt_keys WHERE inbound_id = ANY($1::bigint[])";
    insert_events = "INSERT INTO events (message_id, at_ms, kind, detail)
        SELECT message_id, at_ms, kind, detail
        FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY
            AS u(message_id, at_ms, kind, detail, ord)
        ORDER BY ord";
    insert_event = "INSERT INTO events (message_id, at_ms, kind, detail) VALUES ($1, $2, $3, $4)";
    /// States and times of distinct messages; a message leaving the queue leaves
    /// its claim.
    set_messages = "UPDATE messages AS m SET state = u.state,
        updated_at_ms = GREATEST(m.updated_at_ms, u.at),
        claimed_by = CASE WHEN u.state = 'Queued' THEN m.claimed_by END,
        claim_until_ms = CASE WHEN u.state = 'Queued' THEN m.claim_until_ms END
        FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(id, state, at)
        WHERE m.id = u.id";
    message_state = "SELECT state FROM messages WHERE id = $1";
    /// Another message to the same destination that the provider already gave
    /// this id: the provider took the submit for a repeat of that one (SPEC M16).
    colliding_message = "SELECT other.id, mine.destination, mine.reference, mine.ref_collisions
        FROM messages AS mine JOIN messages AS other
          ON other.provider_key = $2 AND other.id <> mine.id
         AND other.destination = mine.destination
        WHERE mine.id = $1 AND mine.state = 'Queued' LIMIT 1";
    new_reference = "UPDATE messages SET reference = $2, ref_collisions = $3,
        updated_at_ms = GREATEST(updated_at_ms, $4) WHERE id = $1";
    requeue = "UPDATE messages SET attempts = attempts + 1,
        updated_at_ms = GREATEST(updated_at_ms, $2) WHERE id = $1";
    fallback = "UPDATE messages SET hop = $2, attempts = 0,
        updated_at_ms = GREATEST(updated_at_ms, $3) WHERE id = $1 AND state = 'Queued'";
    touch = "UPDATE messages SET updated_at_ms = GREATEST(updated_at_ms, $2) WHERE id = $1";
    inbound_ids_by_key = "SELECT dedupe_key, id FROM inbound WHERE dedupe_key = ANY($1::text[])";
    /// The newest message of each provider key.
    messages_by_provider_keys = "SELECT DISTINCT ON (provider_key) provider_key, id FROM messages
        WHERE provider_key = ANY($1::text[]) ORDER BY provider_key, id DESC";
    lock_message_states = "SELECT id, state FROM messages WHERE id = ANY($1::bigint[])
        ORDER BY id FOR UPDATE";
    insert_inbound = "INSERT INTO inbound (kind, dedupe_key, provider_message_id, message_state,
        source, destination, body, site, smsc, received_at_ms, message_id, attempts,
        next_attempt_at_ms)
        SELECT kind, dedupe_key, provider_message_id, message_state, source, destination, body,
            site, smsc, received_at_ms, message_id, 0, next_attempt_at_ms
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                    $7::bytea[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],
                    $12::bigint[]) WITH ORDINALITY
            AS u(kind, dedupe_key, provider_message_id, message_state, source, destination, body,
                 site, smsc, received_at_ms, message_id, next_attempt_at_ms, ord)
        ORDER BY ord
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING dedupe_key, id";
    insert_receipt_keys = "INSERT INTO receipt_keys (key, inbound_id)
        SELECT key, inbound_id FROM unnest($1::text[], $2::bigint[]) AS u(key, inbound_id)";
    /// The newest copy stored under a windowed key (`identity@received_at`).
    latest_windowed = "SELECT id, received_at_ms FROM inbound
        WHERE dedupe_key > $1 AND dedupe_key < $2 ORDER BY dedupe_key DESC LIMIT 1";
    deliver_inbound = "UPDATE inbound AS i SET delivered_at_ms = u.at, claimed_by = NULL,
        claim_until_ms = NULL
        FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at)
        WHERE i.id = u.id AND i.delivered_at_ms IS NULL
        RETURNING i.id";
    /// A retry gives the claim up: the item is anyone's once due.
    retry_inbound = "UPDATE inbound AS i SET attempts = i.attempts + 1,
        next_attempt_at_ms = u.next_attempt_at_ms, claimed_by = NULL, claim_until_ms = NULL
        FROM unnest($1::bigint[], $2::bigint[]) AS u(id, next_attempt_at_ms)
        WHERE i.id = u.id AND i.delivered_at_ms IS NULL
        RETURNING i.id";
    inbound_exists = "SELECT id FROM inbound WHERE id = ANY($1::bigint[])";
    /// This writer's share of the counts, moved by its transaction's delta.
    add_counters = "INSERT INTO counters (writer, name, value)
        SELECT $1, name, value FROM unnest($2::text[], $3::bigint[]) AS u(name, value) ORDER BY name
        ON CONFLICT (writer, name) DO UPDATE SET value = counters.value + EXCLUDED.value";
    /// Deletes the stale counters of the next chunk of destinations after $1;
    /// answers where the chunk ended (NULL: at the end).
    prune_destinations = r#"WITH chunk AS (SELECT destination FROM destination_refs
            WHERE destination > $1 ORDER BY destination LIMIT $2),
        last AS (SELECT MAX(destination) AS destination FROM chunk),
        gone AS (DELETE FROM destination_refs AS r USING last
            WHERE r.destination > $1 AND r.destination <= last.destination
              AND r.updated_at_ms < $3)
        SELECT destination::text FROM last"#;
}
