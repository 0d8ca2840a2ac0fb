//! The tokio driver (feature `driver`): thin loops that move bytes, events and
//! time between sockets and the sans-IO machines. No protocol decisions here.

mod client;
mod clock;
mod session;

pub use crate::client_policy::Refusal;
pub use client::{
    BindStatus, ClientClosed, ClientConfig, ClientConfigError, ClientEvent, DeliverAck, SmppClient,
    SubmitOutcome, SubmitReport,
};
pub use session::{run_session, ReportSink, SessionCommand, SessionReport};
