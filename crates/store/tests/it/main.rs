//! Integration tests of `hotsite-store` against real database files.

mod durability;
mod messages;
mod model;
mod receipts;
mod references;

use std::path::{Path, PathBuf};

use hotsite_store::{
    InboundKind, MessageId, NewInbound, NewMessage, ReceiptIdFormat, SqliteOptions, SqliteStore,
    Update,
};
use tempfile::TempDir;

/// A fresh store in its own directory (kept alive by the returned `TempDir`).
fn temp_store(options: SqliteOptions) -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hotsite.db");
    let store = SqliteStore::open(&path, options).expect("open");
    (dir, path, store)
}

fn store() -> (TempDir, PathBuf, SqliteStore) {
    temp_store(SqliteOptions::default())
}

fn reopen(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("reopen")
}

fn message(key: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        key: key.to_owned(),
        source: "hotsite".to_owned(),
        destination: format!("+4670{key}"),
        body: format!("body of {key}").into_bytes(),
        data_coding: 0,
        route: String::new(),
        email: None,
        received_at_ms: at_ms,
    }
}

fn receipt(dedupe_key: &str, provider_message_id: &str, state: u8, at_ms: i64) -> NewInbound {
    NewInbound {
        kind: InboundKind::Receipt,
        dedupe_key: dedupe_key.to_owned(),
        provider_message_id: Some(provider_message_id.to_owned()),
        message_state: Some(state),
        source: "+467000".to_owned(),
        destination: "hotsite".to_owned(),
        body: format!("id:{provider_message_id} stat:{state}").into_bytes(),
        site: "b".to_owned(),
        smsc: "b1".to_owned(),
        received_at_ms: at_ms,
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
    }
}

fn mo(dedupe_key: &str, at_ms: i64) -> NewInbound {
    NewInbound {
        kind: InboundKind::Mo,
        dedupe_key: dedupe_key.to_owned(),
        provider_message_id: None,
        message_state: None,
        source: "+467001".to_owned(),
        destination: "12345".to_owned(),
        body: b"hello".to_vec(),
        site: "a".to_owned(),
        smsc: "a1".to_owned(),
        received_at_ms: at_ms,
        id_format: ReceiptIdFormat::Same,
        dedupe_window_ms: None,
    }
}

fn submitted(id: MessageId, provider_message_id: &str, at_ms: i64) -> Update {
    Update::Submitted {
        id,
        provider_message_id: provider_message_id.to_owned(),
        site: "a".to_owned(),
        smsc: "a1".to_owned(),
        at_ms,
    }
}

/// `kind detail` lines of a message's history, for compact assertions.
async fn history(store: &SqliteStore, id: MessageId) -> Vec<String> {
    store
        .message(id)
        .await
        .expect("read")
        .expect("message exists")
        .events
        .into_iter()
        .map(|event| format!("{} {} {}", event.at_ms, event.kind, event.detail))
        .collect()
}
