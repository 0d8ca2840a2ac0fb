//! One SMPP session on an SMSC instance: the SMSC side of a bind.
//!
//! A single task owns the socket and loops over four inputs: bytes from the
//! peer, deliveries routed to it by the [`Provider`](super::provider::Provider),
//! fault changes of its instance, and the deadline of the next delayed response
//! ([`Fault::Slow`]). Outgoing PDUs go through one FIFO queue, so a response is
//! never overtaken by a receipt queued after it.
//!
//! Deliveries this session could not write, or wrote without getting a
//! `deliver_sm_resp`, are handed back to the provider when the session ends and
//! go out on another bind: an SMSC retries what it could not deliver, which is
//! one way receipts arrive twice (SPEC M8, M13).
//!
//! A delivery answered with a non-zero `command_status` (or `generic_nack`),
//! or unanswered for `deliveries.response_timeout_ms`, failed: the provider
//! counts it and, while retries remain, this session routes it again after
//! `deliveries.retry_interval_ms` (SPEC M6, M8).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hotsite_smpp::pdu::{
    frame_len, tag, Bind, BindKind, BindResp, Body, CommandStatus, DataSm, FrameError,
    MessageIdResp, Pdu, ShortMessage, Tlvs,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fault::Fault;
use crate::shared::Shared;
use crate::smpp::provider::{BoundSession, Delivery, SessionId, Submission, SubmitOutcome};

/// `interface_version` / `sc_interface_version` of SMPP 3.4.
const SMPP_3_4: u8 = 0x34;
/// Sequence numbers run from 1 to this, then wrap (SMPP 3.4, 3.2).
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;
/// Initial read buffer: most PDUs are well under this.
const READ_BUFFER: usize = 4096;

/// See the module docs.
pub(crate) struct Session {
    shared: Arc<Shared>,
    instance: usize,
    id: SessionId,
    stream: TcpStream,
    /// Cancelled when the instance dies or the lab shuts down.
    kill: CancellationToken,
    faults: watch::Receiver<Option<Fault>>,
    read_buf: BytesMut,
    outgoing: VecDeque<Outgoing>,
    bind: BindState,
    /// Cloned into the provider's registry when the session binds.
    inbox_sender: mpsc::UnboundedSender<Delivery>,
    inbox: mpsc::UnboundedReceiver<Delivery>,
    next_sequence: u32,
    /// Deliveries written and not yet answered, by sequence number.
    unacked: BTreeMap<u32, Unacked>,
    /// The deadlines of `unacked` in the order written, which is deadline order
    /// (one timeout for all): the next overdue one is at the front, not found by
    /// a scan. Entries answered since are skipped when they reach the front.
    deadlines: VecDeque<(Instant, u32)>,
    /// Receipts of this session's submits, by when they are routed: handled by
    /// this task's own loop, not by a task and a timer per submit.
    receipts_due: VecDeque<(Instant, Vec<Delivery>)>,
    /// No more requests are read; the session ends once `outgoing` is written.
    closing: bool,
}

/// A `deliver_sm` written and waiting for its response; unanswered by its
/// deadline in `Session::deadlines` (`deliveries.response_timeout_ms`), it failed.
struct Unacked {
    delivery: Delivery,
}

enum BindState {
    Open,
    Bound { system_id: String, kind: BindKind },
}

/// A PDU waiting to be written.
enum Outgoing {
    /// An encoded response, held until `not_before` under [`Fault::Slow`].
    Response {
        not_before: Option<Instant>,
        frame: Bytes,
    },
    /// A receipt or MO, numbered and encoded when its turn comes.
    Delivery(Box<Delivery>),
}

/// Why a session ended.
enum End {
    PeerClosed,
    /// Unbound, or a bind was rejected.
    Closed,
    /// The instance died or the lab shut down.
    Killed,
    /// The length prefix cannot be trusted: the stream cannot be resynchronised.
    BadFrame(FrameError),
    Io(io::Error),
}

impl Session {
    /// A session of instance `index` on `stream`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        instance: usize,
        stream: TcpStream,
        kill: CancellationToken,
    ) -> Session {
        let id = shared.provider().new_session_id();
        let faults = shared.watch_fault(instance);
        let (inbox_sender, inbox) = mpsc::unbounded_channel();
        Session {
            shared,
            instance,
            id,
            stream,
            kill,
            faults,
            read_buf: BytesMut::with_capacity(READ_BUFFER),
            outgoing: VecDeque::new(),
            bind: BindState::Open,
            inbox_sender,
            inbox,
            next_sequence: 1,
            unacked: BTreeMap::new(),
            deadlines: VecDeque::new(),
            receipts_due: VecDeque::new(),
            closing: false,
        }
    }

    /// Serves the session until it ends, then hands its undelivered deliveries back.
    pub(crate) async fn run(mut self) {
        tracing::debug!(session = self.id, "connected");
        let end = self.serve().await;
        match &end {
            End::PeerClosed => tracing::debug!("peer closed the connection"),
            End::Closed => tracing::debug!("session closed"),
            End::Killed => {
                // A dead host answers nothing more: reset rather than close, as
                // the peer would see a crash or a cut cable.
                if let Err(error) = self.stream.set_zero_linger() {
                    tracing::debug!(%error, "cannot set SO_LINGER 0");
                }
                tracing::debug!("session reset");
            }
            End::BadFrame(error) => tracing::warn!(%error, "closing: unframeable input"),
            End::Io(error) => tracing::debug!(%error, "connection error"),
        }
        self.release_deliveries();
    }

    async fn serve(&mut self) -> End {
        loop {
            // Routed at their time whatever this session's faults: they may go
            // out on another bind.
            self.route_due_receipts(self.shared.clock.now());
            let blackholed = self.blackholed();
            if !blackholed {
                // Frames read before a blackhole lifted are answered now.
                if let Err(error) = self.handle_frames() {
                    return End::BadFrame(error);
                }
                self.expire_unacked(self.shared.clock.now());
                if let Some(end) = self.write_due().await {
                    return end;
                }
                if self.closing && self.outgoing.is_empty() {
                    return End::Closed;
                }
            }
            let receipts = self.receipts_due.front().map(|(at, _)| *at);
            let next_deadline = if blackholed {
                receipts
            } else {
                match (self.next_deadline(), receipts) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            let reading = !blackholed && !self.closing;
            tokio::select! {
                () = self.kill.cancelled() => return End::Killed,
                changed = self.faults.changed() => {
                    if changed.is_err() {
                        return End::Killed;
                    }
                }
                read = self.stream.read_buf(&mut self.read_buf), if reading => match read {
                    Ok(0) => return End::PeerClosed,
                    Ok(_) => {}
                    Err(error) => return End::Io(error),
                },
                Some(delivery) = self.inbox.recv(), if !blackholed => {
                    self.outgoing.push_back(Outgoing::Delivery(Box::new(delivery)));
                }
                () = sleep_until(next_deadline) => {}
            }
        }
    }

    fn blackholed(&self) -> bool {
        matches!(*self.faults.borrow(), Some(Fault::Blackhole))
    }

    /// Decodes and handles every complete frame in the read buffer.
    fn handle_frames(&mut self) -> Result<(), FrameError> {
        while !self.closing && !self.blackholed() {
            let Some(len) = frame_len(&self.read_buf)? else {
                break;
            };
            let frame = self.read_buf.split_to(len);
            match Pdu::decode(&frame) {
                Ok(pdu) => self.handle_pdu(pdu),
                Err(error) => {
                    // The frame was complete, so the stream is still in step:
                    // answer and carry on.
                    tracing::warn!(%error, "undecodable PDU");
                    self.respond(
                        error.sequence().unwrap_or(0),
                        error.nack_status(),
                        Body::GenericNack,
                    );
                }
            }
        }
        Ok(())
    }

    fn handle_pdu(&mut self, pdu: Pdu) {
        let sequence = pdu.sequence;
        match pdu.body {
            Body::BindTransmitter(bind) => self.handle_bind(sequence, BindKind::Transmitter, bind),
            Body::BindReceiver(bind) => self.handle_bind(sequence, BindKind::Receiver, bind),
            Body::BindTransceiver(bind) => self.handle_bind(sequence, BindKind::Transceiver, bind),
            Body::EnquireLink => {
                self.respond(sequence, CommandStatus::ESME_ROK, Body::EnquireLinkResp);
            }
            Body::Unbind => self.handle_unbind(sequence),
            Body::SubmitSm(message) => {
                let submission = submission_from_submit_sm(message);
                self.handle_submit(sequence, submission, Body::SubmitSmResp);
            }
            Body::DataSm(data) => {
                let submission = submission_from_data_sm(data);
                self.handle_submit(sequence, submission, Body::DataSmResp);
            }
            Body::DeliverSmResp(_) => self.handle_delivery_response(sequence, pdu.status, false),
            Body::GenericNack => self.handle_delivery_response(sequence, pdu.status, true),
            // An ESME does not send these to an SMSC.
            Body::DeliverSm(_) => {
                self.respond(sequence, CommandStatus::ESME_RINVCMDID, Body::GenericNack);
            }
            Body::EnquireLinkResp
            | Body::UnbindResp
            | Body::BindReceiverResp(_)
            | Body::BindTransmitterResp(_)
            | Body::BindTransceiverResp(_)
            | Body::SubmitSmResp(_)
            | Body::DataSmResp(_) => {
                tracing::debug!(sequence, "ignoring unsolicited response");
            }
        }
    }

    fn handle_bind(&mut self, sequence: u32, kind: BindKind, bind: Bind) {
        let at_ms = self.shared.clock.elapsed_ms();
        let status = {
            let mut provider = self.shared.provider();
            provider.record_bind_attempt(self.instance, at_ms);
            if matches!(self.bind, BindState::Bound { .. }) {
                CommandStatus::ESME_RALYBND
            } else {
                provider.check_bind(self.instance, &bind.system_id, &bind.password)
            }
        };
        if status == CommandStatus::ESME_RALYBND {
            // The bind in force stays; only the repeat is refused.
            self.respond(sequence, status, Body::bind_resp(kind, BindResp::default()));
            return;
        }
        if !status.is_ok() {
            tracing::info!(system_id = %bind.system_id, ?kind, %status, "bind rejected");
            self.respond(sequence, status, Body::bind_resp(kind, BindResp::default()));
            self.closing = true;
            return;
        }
        let mut tlvs = Tlvs::default();
        tlvs.set(tag::SC_INTERFACE_VERSION, vec![SMPP_3_4]);
        let resp = BindResp {
            system_id: self.shared.instances[self.instance].target.name.to_string(),
            tlvs,
        };
        // The response is queued before any pending delivery the registration
        // releases, so the peer sees its bind succeed first.
        self.respond(
            sequence,
            CommandStatus::ESME_ROK,
            Body::bind_resp(kind, resp),
        );
        tracing::info!(system_id = %bind.system_id, ?kind, "bound");
        self.shared.provider().register(
            self.id,
            BoundSession {
                instance: self.instance,
                system_id: bind.system_id.clone(),
                receives: kind != BindKind::Transmitter,
                inbox: self.inbox_sender.clone(),
            },
        );
        self.bind = BindState::Bound {
            system_id: bind.system_id,
            kind,
        };
    }

    fn handle_unbind(&mut self, sequence: u32) {
        self.respond(sequence, CommandStatus::ESME_ROK, Body::UnbindResp);
        self.closing = true;
        if matches!(self.bind, BindState::Bound { .. }) {
            self.shared.provider().unregister(self.id);
            self.bind = BindState::Open;
        }
        tracing::info!("unbound");
    }

    fn handle_submit(
        &mut self,
        sequence: u32,
        submission: Submission,
        response: fn(MessageIdResp) -> Body,
    ) {
        let system_id = match &self.bind {
            BindState::Bound { system_id, kind } if *kind != BindKind::Receiver => {
                system_id.clone()
            }
            _ => {
                self.respond(
                    sequence,
                    CommandStatus::ESME_RINVBNDSTS,
                    response(MessageIdResp::default()),
                );
                return;
            }
        };
        if submission.destination.addr.is_empty() {
            self.respond(
                sequence,
                CommandStatus::ESME_RINVDSTADR,
                response(MessageIdResp::default()),
            );
            return;
        }
        let now_unix = self.shared.clock.unix_seconds();
        let received_us = self.shared.clock.elapsed_us();
        let outcome = self.shared.provider().submit(
            self.instance,
            &system_id,
            submission,
            now_unix,
            received_us,
        );
        tracing::debug!(?outcome, "submit");
        let (status, message_id, receipts) = match outcome {
            SubmitOutcome::Throttled => (CommandStatus::ESME_RTHROTTLED, String::new(), Vec::new()),
            SubmitOutcome::Duplicate { message_id } => {
                (CommandStatus::ESME_ROK, message_id, Vec::new())
            }
            SubmitOutcome::Accepted {
                message_id,
                receipts,
            } => (CommandStatus::ESME_ROK, message_id, receipts),
        };
        let resp_at = self.respond(
            sequence,
            status,
            response(MessageIdResp {
                message_id,
                tlvs: Tlvs::default(),
            }),
        );
        if !receipts.is_empty() {
            let delay = Duration::from_millis(self.shared.config.receipts.delay_ms);
            let at = resp_at + delay;
            // Nearly always the latest: inserted at the back.
            let position = self.receipts_due.partition_point(|(due, _)| *due <= at);
            self.receipts_due.insert(position, (at, receipts));
        }
    }

    /// Routes the receipts due by `now`, under one lock of the provider.
    fn route_due_receipts(&mut self, now: Instant) {
        if self.receipts_due.front().is_none_or(|(at, _)| *at > now) {
            return;
        }
        let mut provider = self.shared.provider();
        while let Some((at, _)) = self.receipts_due.front() {
            if *at > now {
                break;
            }
            if let Some((_, receipts)) = self.receipts_due.pop_front() {
                for receipt in receipts {
                    provider.route(receipt);
                }
            }
        }
    }

    /// Routes `receipts` at `at`: the configured delay after the submit's
    /// response goes out, or the retry interval after a failed attempt.
    fn schedule(&self, receipts: Vec<Delivery>, at: Instant) {
        let shared = Arc::clone(&self.shared);
        self.shared.tasks.spawn(async move {
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                () = tokio::time::sleep_until(at) => {
                    let mut provider = shared.provider();
                    for receipt in receipts {
                        provider.route(receipt);
                    }
                }
            }
        });
    }

    fn handle_delivery_response(&mut self, sequence: u32, status: CommandStatus, nack: bool) {
        let Some(Unacked { delivery, .. }) = self.unacked.remove(&sequence) else {
            tracing::debug!(sequence, "response to nothing outstanding");
            return;
        };
        if status.is_ok() && !nack {
            self.shared.provider().record_acked(delivery.kind);
        } else {
            // The client could not take it (a full disk, say): a real SMSC
            // sends it again later (SPEC M6, M8).
            tracing::warn!(sequence, %status, kind = ?delivery.kind, "deliver_sm refused");
            self.retry_later(delivery);
        }
    }

    /// Fails every delivery whose response is overdue at `now` (SPEC M6, M8).
    fn expire_unacked(&mut self, now: Instant) {
        while let Some(&(deadline, sequence)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(Unacked { delivery, .. }) = self.unacked.remove(&sequence) {
                tracing::warn!(sequence, kind = ?delivery.kind, "deliver_sm unanswered");
                self.retry_later(delivery);
            }
        }
    }

    /// Hands a failed delivery to the provider, which counts it and decides
    /// whether it goes out again, `deliveries.retry_interval_ms` from now.
    fn retry_later(&self, delivery: Delivery) {
        let Some(delivery) = self
            .shared
            .provider()
            .delivery_failed(self.instance, delivery)
        else {
            tracing::warn!("deliver_sm abandoned after its last attempt");
            return;
        };
        let at = self.shared.clock.now()
            + Duration::from_millis(self.shared.config.deliveries.retry_interval_ms);
        self.schedule(vec![delivery], at);
    }

    /// Queues a response; returns when it is due to go out.
    fn respond(&mut self, sequence: u32, status: CommandStatus, body: Body) -> Instant {
        let now = self.shared.clock.now();
        let not_before = match *self.faults.borrow() {
            Some(Fault::Slow { delay_ms }) => Some(now + Duration::from_millis(delay_ms)),
            _ => None,
        };
        match Pdu::response(sequence, status, body).encode() {
            Ok(frame) => self
                .outgoing
                .push_back(Outgoing::Response { not_before, frame }),
            Err(error) => tracing::error!(%error, sequence, "cannot encode response"),
        }
        not_before.unwrap_or(now)
    }

    /// Writes every queued PDU that is due, in order.
    async fn write_due(&mut self) -> Option<End> {
        let now = self.shared.clock.now();
        let mut batch = Vec::new();
        while let Some(front) = self.outgoing.front() {
            if let Outgoing::Response {
                not_before: Some(not_before),
                ..
            } = front
            {
                if *not_before > now {
                    break;
                }
            }
            let frame = match self.outgoing.pop_front() {
                Some(Outgoing::Response { frame, .. }) => frame,
                Some(Outgoing::Delivery(delivery)) => match self.delivery_frame(*delivery) {
                    Some(frame) => frame,
                    None => continue,
                },
                None => break,
            };
            // Everything due goes out in one write, not one system call per PDU.
            batch.extend_from_slice(&frame);
        }
        if batch.is_empty() {
            return None;
        }
        tokio::select! {
            written = self.stream.write_all(&batch) => {
                if let Err(error) = written {
                    return Some(End::Io(error));
                }
            }
            () = self.kill.cancelled() => return Some(End::Killed),
        }
        None
    }

    /// Numbers and encodes a delivery, or sends it elsewhere if this session
    /// can no longer carry it (it unbound since the delivery was routed here).
    fn delivery_frame(&mut self, delivery: Delivery) -> Option<Bytes> {
        let receives = matches!(
            self.bind,
            BindState::Bound { kind, .. } if kind != BindKind::Transmitter
        );
        if !receives || self.closing {
            self.shared.provider().route(delivery);
            return None;
        }
        let sequence = self.next_sequence;
        self.next_sequence = if sequence >= MAX_SEQUENCE {
            1
        } else {
            sequence + 1
        };
        let pdu = Pdu::request(sequence, Body::DeliverSm(delivery.message.clone()));
        match pdu.encode() {
            Ok(frame) => {
                self.shared
                    .provider()
                    .record_sent(self.instance, delivery.kind);
                let timeout =
                    Duration::from_millis(self.shared.config.deliveries.response_timeout_ms);
                let deadline = self.shared.clock.now() + timeout;
                self.unacked.insert(sequence, Unacked { delivery });
                self.deadlines.push_back((deadline, sequence));
                Some(frame)
            }
            Err(error) => {
                tracing::error!(%error, "cannot encode deliver_sm; dropping it");
                None
            }
        }
    }

    /// When the first queued response falls due, if it waits, or the first
    /// written delivery's response is overdue, whichever comes first.
    fn next_deadline(&mut self) -> Option<Instant> {
        let response = match self.outgoing.front() {
            Some(Outgoing::Response { not_before, .. }) => *not_before,
            _ => None,
        };
        // Answered ones leave the front, so it is the earliest still unanswered.
        while let Some((_, sequence)) = self.deadlines.front() {
            if self.unacked.contains_key(sequence) {
                break;
            }
            self.deadlines.pop_front();
        }
        let unanswered = self.deadlines.front().map(|(deadline, _)| *deadline);
        match (response, unanswered) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Unregisters the session and routes again everything it still owed.
    fn release_deliveries(&mut self) {
        // Receipts not yet due are routed at their time all the same.
        for (at, receipts) in std::mem::take(&mut self.receipts_due) {
            self.schedule(receipts, at);
        }
        self.deadlines.clear();
        let mut provider = self.shared.provider();
        provider.unregister(self.id);
        self.inbox.close();
        let mut owed = Vec::new();
        for item in self.outgoing.drain(..) {
            if let Outgoing::Delivery(delivery) = item {
                owed.push(*delivery);
            }
        }
        while let Ok(delivery) = self.inbox.try_recv() {
            owed.push(delivery);
        }
        owed.extend(
            std::mem::take(&mut self.unacked)
                .into_values()
                .map(|unacked| unacked.delivery),
        );
        if !owed.is_empty() {
            tracing::debug!(
                count = owed.len(),
                "routing undelivered deliveries elsewhere"
            );
        }
        for delivery in owed {
            provider.route(delivery);
        }
    }
}

fn submission_from_submit_sm(message: ShortMessage) -> Submission {
    Submission {
        body: message.body().clone(),
        user_message_reference: message.tlvs.user_message_reference(),
        source: message.source,
        destination: message.destination,
        data_coding: message.data_coding,
        registered_delivery: message.registered_delivery,
    }
}

fn submission_from_data_sm(data: DataSm) -> Submission {
    Submission {
        body: data.tlvs.message_payload().cloned().unwrap_or_default(),
        user_message_reference: data.tlvs.user_message_reference(),
        source: data.source,
        destination: data.destination,
        data_coding: data.data_coding,
        registered_delivery: data.registered_delivery,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
