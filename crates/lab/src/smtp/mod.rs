//! A tiny SMTP sink on loopback: the e-mail fallback channel's far end
//! (SPEC M11), so `hotsite demo` needs no mail server of its own.
//!
//! Plain SMTP, no TLS, no AUTH: `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA`
//! (dot-unstuffed), `RSET`, `NOOP`, `VRFY`, `HELP`, `QUIT`; `500` for anything
//! else. Command lines are limited to 512 bytes and text lines to 1000 (`500`),
//! messages to `lab.smtp.max_message_bytes` (`552`, also for a larger `SIZE=`).
//! Each accepted mail is recorded ([`crate::SmtpMail`]) with its
//! envelope, raw data, `Subject` and `X-Hotsite-Message-Id`.
//!
//! Faults ([`SmtpFault`]): `die` closes the port and resets every session;
//! `status` answers `MAIL FROM` with the given code; `recover` heals.

mod session;

use std::io;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::LabConfig;
use crate::fault::InvalidFault;
use crate::lab::LabError;
use crate::port::{self, lock, Life, Port};
use crate::shared::Shared;
use crate::stats::SmtpStats;
use crate::traffic::SmtpMail;
use session::{header, Session};

/// Read buffer of a session.
const READ_CHUNK: usize = 4096;

/// A fault to inject into the SMTP sink; setting one replaces the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmtpFault {
    /// The port stops listening and every session is reset.
    Die,
    /// `MAIL FROM` is answered with `code` (400 to 599): 451 and 421 are
    /// temporary failures, 550 and 554 permanent ones.
    Status {
        /// The reply code.
        code: u16,
    },
    /// Back to healthy; after `die` the same port listens again.
    Recover,
}

impl SmtpFault {
    /// Checks the fault's parameters.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        match *self {
            SmtpFault::Status { code } if !(400..=599).contains(&code) => Err(InvalidFault {
                field: "code",
                reason: format!("must be an SMTP failure code between 400 and 599, got {code}"),
            }),
            _ => Ok(()),
        }
    }
}

/// The sink: its port, fault, mails and counters.
pub(crate) struct SmtpSink {
    pub(crate) port: Port,
    max_message_bytes: usize,
    fault: Mutex<Option<SmtpFault>>,
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    mails: Vec<SmtpMail>,
    connections: u64,
    rejected: u64,
}

/// Binds the sink's port, if `[lab.smtp]` is configured.
pub(crate) fn bind(config: &LabConfig) -> Result<Option<(SmtpSink, TcpListener)>, LabError> {
    let Some(smtp) = &config.smtp else {
        return Ok(None);
    };
    let listen_error = |source| LabError::Listen {
        what: "smtp".to_owned(),
        addr: smtp.listen,
        source,
    };
    let listener = port::listen(smtp.listen).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let sink = SmtpSink {
        port: Port::new(addr),
        max_message_bytes: smtp.max_message_bytes,
        fault: Mutex::new(None),
        state: Mutex::new(SinkState::default()),
    };
    Ok(Some((sink, listener)))
}

/// Starts the sink's first life.
pub(crate) fn start(shared: &Arc<Shared>, listener: TcpListener) {
    if let Some(sink) = &shared.smtp {
        *sink.port.life() = Some(spawn_life(shared, listener));
    }
}

fn spawn_life(shared: &Arc<Shared>, listener: TcpListener) -> Life {
    let _runtime = shared.runtime.enter();
    let life = Life::new(listener, &shared.shutdown);
    shared.tasks.spawn(accept_loop(
        Arc::clone(shared),
        Arc::clone(&life.listener),
        life.kill.clone(),
    ));
    life
}

async fn accept_loop(shared: Arc<Shared>, slot: port::ListenerSlot, kill: CancellationToken) {
    let Some(sink) = &shared.smtp else {
        return;
    };
    tracing::info!(addr = %sink.port.addr, "smtp listening");
    let session_kill = kill.clone();
    port::accept_loop("smtp", slot, kill, |stream, peer| {
        lock(&sink.state).connections += 1;
        let span = tracing::info_span!("smtp", %peer);
        let session = serve(Arc::clone(&shared), stream, session_kill.clone());
        shared.tasks.spawn(session.instrument(span));
    })
    .await;
}

/// Runs one session until QUIT, the peer leaves, or `kill` resets it.
async fn serve(shared: Arc<Shared>, mut stream: TcpStream, kill: CancellationToken) {
    let Some(sink) = &shared.smtp else {
        return;
    };
    let result = tokio::select! {
        () = kill.cancelled() => {
            // A dead host answers nothing more: reset, as SMPP sessions do.
            if let Err(error) = stream.set_zero_linger() {
                tracing::debug!(%error, "cannot set SO_LINGER 0");
            }
            return;
        }
        result = converse(&shared, sink, &mut stream) => result,
    };
    if let Err(error) = result {
        tracing::debug!(%error, "smtp session ended");
    }
}

async fn converse(shared: &Shared, sink: &SmtpSink, stream: &mut TcpStream) -> io::Result<()> {
    let mut session = Session::new(sink.max_message_bytes);
    stream.write_all(Session::greeting().as_bytes()).await?;
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Set while the rest of a too-long line is thrown away.
    let mut skipping = false;
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut replies = String::new();
        let mut close = false;
        while let Some(newline) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            if skipping {
                skipping = false;
                continue;
            }
            let output = if line.len() > session.max_line() {
                session.line_too_long()
            } else {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                session.line(text, *lock(&sink.fault))
            };
            replies.push_str(&output.reply);
            sink.record(shared, &output);
            if output.close {
                close = true;
                break;
            }
        }
        if skipping {
            buffer.clear();
        } else if !close && buffer.len() > session.max_line() {
            // No line ending in sight: answer now, drop the rest of the line.
            let output = session.line_too_long();
            replies.push_str(&output.reply);
            buffer.clear();
            skipping = true;
        }
        if !replies.is_empty() {
            stream.write_all(replies.as_bytes()).await?;
        }
        if close {
            stream.shutdown().await?;
            return Ok(());
        }
    }
}

impl SmtpSink {
    fn record(&self, shared: &Shared, output: &session::Output) {
        let mut state = lock(&self.state);
        if output.rejected {
            state.rejected += 1;
        }
        if let Some(mail) = &output.mail {
            tracing::debug!(from = %mail.from, recipients = ?mail.recipients, "mail accepted");
            state.mails.push(SmtpMail {
                helo: mail.helo.clone(),
                from: mail.from.clone(),
                recipients: mail.recipients.clone(),
                data: String::from_utf8_lossy(&mail.data).into_owned(),
                subject: header(&mail.data, "Subject"),
                message_id: header(&mail.data, "X-Hotsite-Message-Id"),
                received_us: shared.clock.elapsed_us(),
                received_unix_ms: shared.clock.unix_ms(),
            });
        }
    }

    /// Every mail accepted, oldest first.
    pub(crate) fn mails(&self) -> Vec<SmtpMail> {
        lock(&self.state).mails.clone()
    }

    pub(crate) fn stats(&self) -> SmtpStats {
        let state = lock(&self.state);
        SmtpStats {
            addr: self.port.addr,
            fault: *lock(&self.fault),
            connections: state.connections,
            accepted: state.mails.len() as u64,
            rejected: state.rejected,
        }
    }
}

impl Shared {
    /// Puts the SMTP sink into `fault`. After `Die` returns the port refuses
    /// connections; any other fault on a dead sink brings it back.
    pub(crate) fn set_smtp_fault(self: &Arc<Self>, fault: SmtpFault) -> Result<(), LabError> {
        fault.validate()?;
        let Some(sink) = &self.smtp else {
            return Err(LabError::NotConfigured("lab.smtp"));
        };
        let mut life = sink.port.life();
        tracing::info!(?fault, "smtp fault");
        let in_force = match fault {
            SmtpFault::Recover => None,
            other => Some(other),
        };
        if fault == SmtpFault::Die {
            *lock(&sink.fault) = in_force;
            if let Some(life) = life.take() {
                life.end();
            }
            return Ok(());
        }
        if life.is_none() {
            let _runtime = self.runtime.enter();
            let listener = port::listen(sink.port.addr).map_err(|source| LabError::Listen {
                what: "smtp".to_owned(),
                addr: sink.port.addr,
                source,
            })?;
            *lock(&sink.fault) = in_force;
            *life = Some(spawn_life(self, listener));
        } else {
            *lock(&sink.fault) = in_force;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is posted to `/v1/smtp/fault` is what the stats show.
    #[test]
    fn fault_json_round_trips_and_codes_are_bounded() {
        for (json, fault) in [
            (r#"{"fault":"die"}"#, SmtpFault::Die),
            (
                r#"{"fault":"status","code":451}"#,
                SmtpFault::Status { code: 451 },
            ),
            (r#"{"fault":"recover"}"#, SmtpFault::Recover),
        ] {
            let parsed: SmtpFault = serde_json::from_str(json).expect(json);
            assert_eq!(parsed, fault);
            assert_eq!(serde_json::to_string(&fault).expect("serialise"), json);
        }
        assert!(serde_json::from_str::<SmtpFault>(r#"{"fault":"status"}"#).is_err());
        assert!(SmtpFault::Status { code: 250 }.validate().is_err());
        assert!(SmtpFault::Status { code: 554 }.validate().is_ok());
    }
}
