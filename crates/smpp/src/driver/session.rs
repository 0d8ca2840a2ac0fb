//! Runs one [`Session`] over a TCP connection: bytes in, machine, bytes out.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::clock;
use crate::pdu::{CommandStatus, ShortMessage};
use crate::session::{Session, SessionEvent, SessionState, SubmitError, SubmitId};

/// What the owner of a running session can ask of it.
#[derive(Debug)]
pub enum SessionCommand {
    /// Send a `submit_sm`.
    Submit {
        /// The owner's id, echoed in the outcome.
        id: SubmitId,
        /// The message.
        message: ShortMessage,
    },
    /// Answer a `deliver_sm`.
    RespondDeliver {
        /// Its sequence number.
        sequence: u32,
        /// The answer.
        status: CommandStatus,
    },
    /// Unbind gracefully.
    Unbind,
}

/// What a running session reports to its owner.
#[derive(Debug)]
pub enum SessionReport {
    /// An event of the state machine. The last report is always `Closed`.
    Event(SessionEvent),
    /// A submit the session could not take; it never left and may go elsewhere.
    Refused {
        /// The owner's id.
        id: SubmitId,
        /// Why.
        error: SubmitError,
    },
}

/// Where a running session's reports go.
pub trait ReportSink: Send + 'static {
    /// Delivers one report; `false` once nobody listens any more.
    fn report(&self, report: SessionReport) -> bool;
}

impl ReportSink for mpsc::UnboundedSender<SessionReport> {
    fn report(&self, report: SessionReport) -> bool {
        self.send(report).is_ok()
    }
}

/// Commands handled before the next write: enough to fill a window, small enough
/// to keep reads and timers flowing.
const MAX_COMMANDS_PER_WAKEUP: usize = 256;

fn handle_command(
    session: &mut Session,
    now: std::time::Instant,
    command: SessionCommand,
    reports: &impl ReportSink,
) {
    match command {
        SessionCommand::Submit { id, message } => {
            if let Err(error) = session.submit(now, id, message) {
                reports.report(SessionReport::Refused { id, error });
            }
        }
        SessionCommand::RespondDeliver { sequence, status } => {
            session.respond_deliver(sequence, status)
        }
        SessionCommand::Unbind => session.unbind(now),
    }
}

/// Drives `session` over `stream` until it closes. Every outcome goes to
/// `reports`; the last one is [`SessionEvent::Closed`]. Dropping every sender of
/// `commands` unbinds.
pub async fn run_session(
    mut stream: TcpStream,
    mut session: Session,
    mut commands: mpsc::UnboundedReceiver<SessionCommand>,
    reports: impl ReportSink,
    write_timeout: Duration,
) {
    // Small PDUs both ways: don't let Nagle hold a submit back.
    let _ = stream.set_nodelay(true);
    let mut read_buffer = BytesMut::with_capacity(16 * 1024);
    let mut write_buffer = BytesMut::with_capacity(16 * 1024);
    let mut commands_open = true;
    loop {
        while let Some(bytes) = session.poll_transmit() {
            write_buffer.extend_from_slice(&bytes);
        }
        if !write_buffer.is_empty() {
            // A peer that stops reading must not stall the timers forever.
            let written =
                tokio::time::timeout(write_timeout, stream.write_all(&write_buffer)).await;
            write_buffer.clear();
            if !matches!(written, Ok(Ok(()))) {
                session.handle_disconnect();
            }
        }
        let mut closed = false;
        while let Some(event) = session.poll_event() {
            closed |= matches!(event, SessionEvent::Closed { .. });
            reports.report(SessionReport::Event(event));
        }
        if closed {
            // Submits already queued to this task never reached the session:
            // hand them back so they can go out on another bind.
            commands.close();
            while let Ok(command) = commands.try_recv() {
                if let SessionCommand::Submit { id, .. } = command {
                    let error = SubmitError::NotBound(SessionState::Closed);
                    reports.report(SessionReport::Refused { id, error });
                }
            }
            return;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            read = stream.read_buf(&mut read_buffer) => match read {
                Ok(0) | Err(_) => session.handle_disconnect(),
                Ok(_) => {
                    session.handle_input(clock::now(), &read_buffer);
                    read_buffer.clear();
                }
            },
            command = commands.recv(), if commands_open => {
                let now = clock::now();
                let mut next = command;
                // Take every command already waiting, so that one write carries
                // many PDUs instead of one system call each.
                for _ in 0..MAX_COMMANDS_PER_WAKEUP {
                    match next {
                        Some(command) => handle_command(&mut session, now, command, &reports),
                        None => {
                            commands_open = false;
                            session.unbind(now);
                            break;
                        }
                    }
                    next = match commands.try_recv() {
                        Ok(command) => Some(command),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    };
                }
            }
            () = clock::sleep_until(deadline) => session.handle_timeout(clock::now()),
        }
    }
}
