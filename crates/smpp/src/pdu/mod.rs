//! SMPP 3.4 protocol data units: types, encoder and decoder.
//!
//! Our own codec rather than `rusmpp`'s: SMPP 3.4 is a small, fixed format, and
//! owning it lets the decoder report *which* field was wrong together with the
//! header it could still read, so the session can answer `generic_nack` with the
//! peer's sequence number instead of dropping the connection.
//!
//! Framing is split from decoding, as in mini-redis: [`frame_len`] says how many
//! bytes the next PDU takes (or that more are needed), [`Pdu::decode`] parses one
//! complete frame. Neither ever panics, whatever the bytes.

mod codec;
mod status;
mod tlv;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use codec::{frame_len, DecodeError, EncodeError, FrameError, HEADER_LEN, MAX_PDU_LEN};
pub use status::{CommandStatus, Outcome};
pub use tlv::{tag, MessageState, Tlv, Tlvs};

/// One PDU: header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// `sequence_number`: pairs a response with its request.
    pub sequence: u32,
    /// `command_status`: `ESME_ROK` on requests.
    pub status: CommandStatus,
    /// The command and its fields.
    pub body: Body,
}

/// The commands hotsite speaks. `command_id` follows from the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `bind_receiver`.
    BindReceiver(Bind),
    /// `bind_receiver_resp`.
    BindReceiverResp(BindResp),
    /// `bind_transmitter`.
    BindTransmitter(Bind),
    /// `bind_transmitter_resp`.
    BindTransmitterResp(BindResp),
    /// `bind_transceiver`.
    BindTransceiver(Bind),
    /// `bind_transceiver_resp`.
    BindTransceiverResp(BindResp),
    /// `unbind`.
    Unbind,
    /// `unbind_resp`.
    UnbindResp,
    /// `enquire_link`.
    EnquireLink,
    /// `enquire_link_resp`.
    EnquireLinkResp,
    /// `generic_nack`.
    GenericNack,
    /// `submit_sm`.
    SubmitSm(ShortMessage),
    /// `submit_sm_resp`.
    SubmitSmResp(MessageIdResp),
    /// `deliver_sm`: an MO message or a delivery receipt.
    DeliverSm(ShortMessage),
    /// `deliver_sm_resp`.
    DeliverSmResp(MessageIdResp),
    /// `data_sm`.
    DataSm(DataSm),
    /// `data_sm_resp`.
    DataSmResp(MessageIdResp),
}

/// The three kinds of bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// Sends submits only.
    Transmitter,
    /// Receives MOs and receipts only.
    Receiver,
    /// Both: the default (SPEC M4).
    Transceiver,
}

/// Fields of the `bind_*` requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bind {
    /// Account name (at most 15 characters).
    pub system_id: String,
    /// Password (at most 8 characters).
    pub password: String,
    /// System type (at most 12 characters).
    pub system_type: String,
    /// `0x34` for SMPP 3.4.
    pub interface_version: u8,
    /// Type of number of `address_range`.
    pub addr_ton: u8,
    /// Numbering plan of `address_range`.
    pub addr_npi: u8,
    /// Addresses served by this bind (at most 40 characters).
    pub address_range: String,
}

/// Fields of the `bind_*_resp` responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindResp {
    /// The SMSC's identifier.
    pub system_id: String,
    /// Optional parameters (`sc_interface_version`).
    pub tlvs: Tlvs,
}

/// An address: type of number, numbering plan, digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// Type of number.
    pub ton: u8,
    /// Numbering plan indicator.
    pub npi: u8,
    /// The address (at most 20 characters).
    pub addr: String,
}

/// Fields shared by `submit_sm` and `deliver_sm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShortMessage {
    /// Service type (at most 5 characters).
    pub service_type: String,
    /// Sender.
    pub source: Address,
    /// Recipient.
    pub destination: Address,
    /// Message mode and type; bit 2 (0x04) marks a delivery receipt in `deliver_sm`.
    pub esm_class: u8,
    /// Protocol identifier.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: u8,
    /// Scheduled delivery time (empty or 16 characters).
    pub schedule_delivery_time: String,
    /// Validity period (empty or 16 characters).
    pub validity_period: String,
    /// Receipt request: 1 asks for a final receipt.
    pub registered_delivery: u8,
    /// Replace-if-present flag.
    pub replace_if_present_flag: u8,
    /// Encoding of the body.
    pub data_coding: u8,
    /// Canned message id.
    pub sm_default_msg_id: u8,
    /// The body (at most 254 octets; longer bodies go in `message_payload`).
    pub short_message: Bytes,
    /// Optional parameters.
    pub tlvs: Tlvs,
}

impl ShortMessage {
    /// `esm_class` bit that marks a `deliver_sm` as a delivery receipt.
    pub const ESM_CLASS_RECEIPT: u8 = 0x04;

    /// Whether this `deliver_sm` is a delivery receipt rather than an MO message.
    pub fn is_receipt(&self) -> bool {
        self.esm_class & 0x3C == Self::ESM_CLASS_RECEIPT
    }

    /// The body: `message_payload` if present, else `short_message`.
    pub fn body(&self) -> &Bytes {
        self.tlvs.message_payload().unwrap_or(&self.short_message)
    }
}

/// Fields of `data_sm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSm {
    /// Service type (at most 5 characters).
    pub service_type: String,
    /// Sender.
    pub source: Address,
    /// Recipient.
    pub destination: Address,
    /// Message mode and type.
    pub esm_class: u8,
    /// Receipt request.
    pub registered_delivery: u8,
    /// Encoding of the body.
    pub data_coding: u8,
    /// Optional parameters; the body is in `message_payload`.
    pub tlvs: Tlvs,
}

/// Fields of `submit_sm_resp`, `deliver_sm_resp` and `data_sm_resp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageIdResp {
    /// The id the SMSC gave the message (empty in `deliver_sm_resp`, and absent
    /// from error responses).
    pub message_id: String,
    /// Optional parameters (only `data_sm_resp` carries them).
    pub tlvs: Tlvs,
}

/// `command_id` values (SMPP 3.4, section 5.1.2.1).
pub mod command_id {
    #![allow(missing_docs)]
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    pub const BIND_RECEIVER_RESP: u32 = 0x8000_0001;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const BIND_TRANSMITTER_RESP: u32 = 0x8000_0002;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
    pub const DATA_SM: u32 = 0x0000_0103;
    pub const DATA_SM_RESP: u32 = 0x8000_0103;
}

impl Body {
    /// The `command_id` of this body.
    pub fn command_id(&self) -> u32 {
        use command_id::*;
        match self {
            Body::BindReceiver(_) => BIND_RECEIVER,
            Body::BindReceiverResp(_) => BIND_RECEIVER_RESP,
            Body::BindTransmitter(_) => BIND_TRANSMITTER,
            Body::BindTransmitterResp(_) => BIND_TRANSMITTER_RESP,
            Body::BindTransceiver(_) => BIND_TRANSCEIVER,
            Body::BindTransceiverResp(_) => BIND_TRANSCEIVER_RESP,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND_RESP,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK_RESP,
            Body::GenericNack => GENERIC_NACK,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp(_) => SUBMIT_SM_RESP,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp(_) => DELIVER_SM_RESP,
            Body::DataSm(_) => DATA_SM,
            Body::DataSmResp(_) => DATA_SM_RESP,
        }
    }

    /// Whether this is a response (bit 31 of `command_id` set).
    pub fn is_response(&self) -> bool {
        self.command_id() & 0x8000_0000 != 0
    }

    /// The bind request for `kind`.
    pub fn bind(kind: BindKind, bind: Bind) -> Body {
        match kind {
            BindKind::Transmitter => Body::BindTransmitter(bind),
            BindKind::Receiver => Body::BindReceiver(bind),
            BindKind::Transceiver => Body::BindTransceiver(bind),
        }
    }

    /// The bind response for `kind`.
    pub fn bind_resp(kind: BindKind, resp: BindResp) -> Body {
        match kind {
            BindKind::Transmitter => Body::BindTransmitterResp(resp),
            BindKind::Receiver => Body::BindReceiverResp(resp),
            BindKind::Transceiver => Body::BindTransceiverResp(resp),
        }
    }
}

impl Pdu {
    /// A request with `ESME_ROK` status.
    pub fn request(sequence: u32, body: Body) -> Pdu {
        Pdu {
            sequence,
            status: CommandStatus::ESME_ROK,
            body,
        }
    }

    /// A response to the request numbered `sequence`.
    pub fn response(sequence: u32, status: CommandStatus, body: Body) -> Pdu {
        Pdu {
            sequence,
            status,
            body,
        }
    }

    /// The `command_id`.
    pub fn command_id(&self) -> u32 {
        self.body.command_id()
    }
}
