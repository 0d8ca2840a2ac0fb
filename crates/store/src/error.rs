//! What can go wrong, in terms a caller can act on.

use crate::types::MessageId;

/// A store error. Every variant means the request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the configured size limit) is full. New work is refused; work
    /// committed before is intact. Retry after space is freed.
    #[error("storage full while {0}: new work refused, committed work is intact")]
    Full(String),
    /// The database server cannot be reached (refused, closed, reset, timed out,
    /// shut down, or out of connections). New work is refused; work committed
    /// before is intact. A write whose commit was cut off may or may not have
    /// committed: repeat it with the same key (contract item 9). The store
    /// reconnects by itself on the next request.
    #[error("database unreachable while {0}: new work refused, committed work is intact")]
    Unavailable(String),
    /// The options given to open the store are not usable (a bad URL, schema name
    /// or TLS setting); nothing was opened.
    #[error("invalid store options: {0}")]
    InvalidOptions(String),
    /// The store's writer or readers are gone (shut down or crashed).
    #[error("store closed")]
    Closed,
    /// The database file is damaged or is not a database.
    #[error("database corrupt while {0}")]
    Corrupt(String),
    /// The operating system failed to read, write or open the database.
    #[error("I/O error while {0}")]
    Io(String),
    /// Any other database error, with what the store was doing.
    #[error("database error while {0}")]
    Database(String),
    /// The file was written by a newer hotsite; this one refuses to touch it.
    #[error(
        "database schema version {found} is newer than the {supported} this hotsite \
         supports: upgrade hotsite (the file was not changed)"
    )]
    SchemaTooNew {
        /// The file's `schema_version`.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// Another process holds the store (SPEC M17: one gateway per embedded store).
    #[error(
        "the store {path} is in use by another process ({holder}): one gateway per store; \
         stop the other one, or give this one its own [store] path"
    )]
    Locked {
        /// The database file.
        path: String,
        /// What the lock file says of its holder.
        holder: String,
    },
    /// An update named a message that does not exist.
    #[error("no message with id {0}")]
    UnknownMessage(MessageId),
    /// An inbound update named an item that does not exist.
    #[error("no inbound item with id {0}")]
    UnknownInbound(i64),
}
