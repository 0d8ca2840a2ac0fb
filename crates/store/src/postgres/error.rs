//! PostgreSQL errors in terms a caller can act on.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

use crate::error::StoreError;

/// Maps a driver error; `doing` says what the store was doing.
pub(crate) fn map_error(doing: &str, error: &tokio_postgres::Error) -> StoreError {
    let detail = describe(doing, error);
    if is_unavailable(error) {
        return StoreError::Unavailable(detail);
    }
    match error.code() {
        Some(code) if *code == SqlState::DISK_FULL => StoreError::Full(detail),
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            StoreError::Corrupt(detail)
        }
        Some(code) if code.code().starts_with("58") => StoreError::Io(detail),
        _ => StoreError::Database(detail),
    }
}

/// Whether the server cannot be reached: connection refused, closed or reset,
/// a connect timeout, SQLSTATE class 08, an administrator's shutdown or
/// `pg_terminate_backend` (57P01-57P03), or no connection slot left (53300).
pub(crate) fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if let Some(code) = error.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS;
    }
    if error.is_closed() {
        return true;
    }
    // The driver's own kinds are private: an I/O cause, or its words for a
    // failed or timed-out connect, mean the server is out of reach.
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    let text = error.to_string();
    text.starts_with("error connecting to server") || text.starts_with("timeout")
}

/// Whether the transaction lost a race it may simply run again: a deadlock
/// (40P01) or a serialization failure (40001).
pub(crate) fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// `doing: message (SQLSTATE, detail)`, as much as the server said.
fn describe(doing: &str, error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{doing}: {} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => match error.source() {
            Some(cause) => format!("{doing}: {error}: {cause}"),
            None => format!("{doing}: {error}"),
        },
    }
}

/// `.context("what the store was doing")` for driver results.
pub(crate) trait Context<T> {
    fn context(self, doing: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, doing: &str) -> Result<T, StoreError> {
        self.map_err(|error| map_error(doing, &error))
    }
}

/// Maps a pool error (no connection to lend, or making one failed).
pub(crate) fn map_pool_error(doing: &str, error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(error) => map_error(doing, &error),
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "{doing}: no database connection within the connect timeout ({kind:?})"
        )),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Database(format!("{doing}: {other}")),
    }
}
