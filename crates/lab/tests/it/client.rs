//! A tiny SMPP client for the tests: the `hotsite_smpp::pdu` codec over a tokio
//! `TcpStream`, nothing else, so a failure points at the lab and not at
//! hotsite's own session code.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use hotsite_smpp::pdu::{
    frame_len, Address, Bind, BindKind, Body, MessageIdResp, Pdu, ShortMessage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the tests wait for something that should happen.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(800);
/// How long the tests wait to be sure something does not happen.
pub(crate) const QUIET: Duration = Duration::from_millis(250);

/// What ended a wait for a PDU.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// Nothing arrived in time.
    Timeout,
    /// The peer closed the connection cleanly.
    Closed,
    /// The connection failed (a reset, say).
    Io(io::Error),
    /// The bytes were not a PDU; the text shows in failure messages.
    Garbage(#[allow(dead_code)] String),
}

pub(crate) struct Client {
    stream: TcpStream,
    read_buf: BytesMut,
    next_sequence: u32,
    /// `deliver_sm` that arrived while waiting for something else, already answered.
    delivered: VecDeque<ShortMessage>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Ok(Client {
            stream,
            read_buf: BytesMut::new(),
            next_sequence: 1,
            delivered: VecDeque::new(),
        })
    }

    /// Connects and binds as `hotsite`/`secret`, expecting success.
    pub(crate) async fn bound(addr: SocketAddr, kind: BindKind) -> Client {
        let mut client = Client::connect(addr).await.expect("connect");
        let resp = client.bind(kind, "hotsite", "secret").await;
        assert!(resp.status.is_ok(), "bind failed: {resp:?}");
        client
    }

    pub(crate) fn next_sequence(&mut self) -> u32 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    pub(crate) async fn send(&mut self, pdu: &Pdu) {
        let frame = pdu.encode().expect("test PDUs encode");
        self.send_raw(&frame).await;
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next PDU within `within`, whatever it is.
    pub(crate) async fn recv(&mut self, within: Duration) -> Result<Pdu, RecvError> {
        tokio::time::timeout(within, self.recv_forever())
            .await
            .unwrap_or(Err(RecvError::Timeout))
    }

    async fn recv_forever(&mut self) -> Result<Pdu, RecvError> {
        loop {
            match frame_len(&self.read_buf) {
                Err(error) => return Err(RecvError::Garbage(error.to_string())),
                Ok(Some(len)) => {
                    let frame = self.read_buf.split_to(len);
                    return Pdu::decode(&frame)
                        .map_err(|error| RecvError::Garbage(error.to_string()));
                }
                Ok(None) => match self.stream.read_buf(&mut self.read_buf).await {
                    Ok(0) => return Err(RecvError::Closed),
                    Ok(_) => {}
                    Err(error) => return Err(RecvError::Io(error)),
                },
            }
        }
    }

    /// Sends a request and waits for its response, answering and keeping any
    /// `deliver_sm` that arrives meanwhile.
    pub(crate) async fn request(&mut self, body: Body) -> Result<Pdu, RecvError> {
        let sequence = self.next_sequence();
        self.send(&Pdu::request(sequence, body)).await;
        self.response_to(sequence, TIMEOUT).await
    }

    /// Waits for the response numbered `sequence`.
    pub(crate) async fn response_to(
        &mut self,
        sequence: u32,
        within: Duration,
    ) -> Result<Pdu, RecvError> {
        // Bounded: each round consumes a PDU or returns.
        for _ in 0..1000 {
            let pdu = self.recv(within).await?;
            if let Body::DeliverSm(message) = pdu.body {
                self.ack(pdu.sequence).await;
                self.delivered.push_back(message);
                continue;
            }
            if pdu.sequence == sequence {
                return Ok(pdu);
            }
        }
        panic!("no response to {sequence} among 1000 PDUs");
    }

    pub(crate) async fn bind(&mut self, kind: BindKind, system_id: &str, password: &str) -> Pdu {
        let bind = Bind {
            system_id: system_id.into(),
            password: password.into(),
            interface_version: 0x34,
            ..Bind::default()
        };
        self.request(Body::bind(kind, bind))
            .await
            .expect("bind response")
    }

    pub(crate) async fn submit(&mut self, message: ShortMessage) -> Pdu {
        self.request(Body::SubmitSm(message))
            .await
            .expect("submit_sm_resp")
    }

    /// The next `deliver_sm` (answered) within `within`, or `None`.
    pub(crate) async fn next_deliver(&mut self, within: Duration) -> Option<ShortMessage> {
        if let Some(message) = self.delivered.pop_front() {
            return Some(message);
        }
        for _ in 0..1000 {
            let pdu = self.recv(within).await.ok()?;
            if let Body::DeliverSm(message) = pdu.body {
                self.ack(pdu.sequence).await;
                return Some(message);
            }
        }
        None
    }

    async fn ack(&mut self, sequence: u32) {
        let resp = Pdu::response(
            sequence,
            hotsite_smpp::pdu::CommandStatus::ESME_ROK,
            Body::DeliverSmResp(MessageIdResp::default()),
        );
        self.send(&resp).await;
    }

    /// Waits until the peer closes or resets the connection.
    pub(crate) async fn closed(&mut self, within: Duration) -> Result<(), RecvError> {
        for _ in 0..1000 {
            match self.recv(within).await {
                Ok(_) => continue,
                Err(RecvError::Closed | RecvError::Io(_)) => return Ok(()),
                Err(other) => return Err(other),
            }
        }
        Err(RecvError::Timeout)
    }
}

/// An SMS to `to`, with a receipt requested and, if given, a reference.
pub(crate) fn sms(to: &str, text: &str, reference: Option<u16>) -> ShortMessage {
    let mut message = ShortMessage {
        source: Address {
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: to.into(),
        },
        registered_delivery: 1,
        short_message: bytes::Bytes::copy_from_slice(text.as_bytes()),
        ..ShortMessage::default()
    };
    if let Some(reference) = reference {
        message.tlvs.set_user_message_reference(reference);
    }
    message
}
