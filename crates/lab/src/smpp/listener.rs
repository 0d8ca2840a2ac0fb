//! One life of an SMSC instance's listener: accept connections until killed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::port::{self, ListenerSlot};
use crate::shared::Shared;
use crate::smpp::session::Session;

/// Accepts connections for instance `index` and runs a [`Session`] for each,
/// until `kill` is cancelled or the listener is taken out of `slot`.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    index: usize,
    slot: ListenerSlot,
    kill: CancellationToken,
) {
    let target = shared.instances[index].target.clone();
    let what = format!("smsc {target}");
    tracing::info!(smsc = %target, addr = %shared.instances[index].port.addr, "listening");
    let session_kill = kill.clone();
    port::accept_loop(&what, slot, kill, |stream, peer| {
        shared.provider().record_connection(index);
        let span = tracing::info_span!("session", smsc = %target, %peer);
        let session = Session::new(Arc::clone(&shared), index, stream, session_kill.clone());
        shared.tasks.spawn(session.run().instrument(span));
    })
    .await;
}
