//! Optional parameters (TLVs) and the tags hotsite reads.

use bytes::Bytes;

/// One optional parameter: tag, and the raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The parameter tag.
    pub tag: u16,
    /// The value, exactly as on the wire.
    pub value: Bytes,
}

/// Tags of the optional parameters hotsite uses (SMPP 3.4, section 5.3.2).
pub mod tag {
    /// Reference the ESME assigns to a message; the provider dedupes on it (SPEC M8).
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    /// Concatenated message reference number.
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    /// Number of segments of a concatenated message.
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    /// Sequence number of this segment.
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    /// SMPP version the SMSC supports, in bind responses.
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    /// Message body longer than `short_message` allows.
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    /// State of the message a receipt is about (SPEC M13).
    pub const MESSAGE_STATE: u16 = 0x0427;
    /// Id (from `submit_sm_resp`) of the message a receipt is about (SPEC M13).
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
}

/// `message_state` values (SMPP 3.4, section 5.2.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// 1: in transit.
    Enroute,
    /// 2: delivered to the handset.
    Delivered,
    /// 3: validity period expired.
    Expired,
    /// 4: deleted.
    Deleted,
    /// 5: undeliverable.
    Undeliverable,
    /// 6: accepted (on behalf of the subscriber).
    Accepted,
    /// 7: state unknown.
    Unknown,
    /// 8: rejected.
    Rejected,
}

impl MessageState {
    /// The state for a wire value, if it is one of the eight defined.
    pub fn from_u8(value: u8) -> Option<MessageState> {
        Some(match value {
            1 => MessageState::Enroute,
            2 => MessageState::Delivered,
            3 => MessageState::Expired,
            4 => MessageState::Deleted,
            5 => MessageState::Undeliverable,
            6 => MessageState::Accepted,
            7 => MessageState::Unknown,
            8 => MessageState::Rejected,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            MessageState::Enroute => 1,
            MessageState::Delivered => 2,
            MessageState::Expired => 3,
            MessageState::Deleted => 4,
            MessageState::Undeliverable => 5,
            MessageState::Accepted => 6,
            MessageState::Unknown => 7,
            MessageState::Rejected => 8,
        }
    }

    /// Whether no later receipt will change the outcome.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageState::Enroute | MessageState::Unknown)
    }
}

/// The optional parameters of a PDU, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tlvs(pub Vec<Tlv>);

impl Tlvs {
    /// The value of the first parameter with `tag`.
    pub fn get(&self, tag: u16) -> Option<&Bytes> {
        self.0
            .iter()
            .find(|tlv| tlv.tag == tag)
            .map(|tlv| &tlv.value)
    }

    /// Sets `tag` to `value`, replacing an earlier value.
    pub fn set(&mut self, tag: u16, value: impl Into<Bytes>) {
        let value = value.into();
        match self.0.iter_mut().find(|tlv| tlv.tag == tag) {
            Some(tlv) => tlv.value = value,
            None => self.0.push(Tlv { tag, value }),
        }
    }

    /// `user_message_reference`, if present and two bytes long.
    pub fn user_message_reference(&self) -> Option<u16> {
        self.get_u16(tag::USER_MESSAGE_REFERENCE)
    }

    /// Sets `user_message_reference`.
    pub fn set_user_message_reference(&mut self, reference: u16) {
        self.set(
            tag::USER_MESSAGE_REFERENCE,
            Bytes::copy_from_slice(&reference.to_be_bytes()),
        );
    }

    /// `receipted_message_id` (a C-octet string), without its terminating NUL.
    pub fn receipted_message_id(&self) -> Option<&str> {
        let value = self.get(tag::RECEIPTED_MESSAGE_ID)?;
        let value = value.strip_suffix(&[0]).unwrap_or(value);
        std::str::from_utf8(value).ok()
    }

    /// Sets `receipted_message_id`.
    pub fn set_receipted_message_id(&mut self, id: &str) {
        let mut value = Vec::with_capacity(id.len() + 1);
        value.extend_from_slice(id.as_bytes());
        value.push(0);
        self.set(tag::RECEIPTED_MESSAGE_ID, value);
    }

    /// `message_state`, if present and one of the defined values.
    pub fn message_state(&self) -> Option<MessageState> {
        match self.get(tag::MESSAGE_STATE)?.as_ref() {
            [value] => MessageState::from_u8(*value),
            _ => None,
        }
    }

    /// Sets `message_state`.
    pub fn set_message_state(&mut self, state: MessageState) {
        self.set(tag::MESSAGE_STATE, vec![state.as_u8()]);
    }

    /// `message_payload`: the body when it does not fit in `short_message`.
    pub fn message_payload(&self) -> Option<&Bytes> {
        self.get(tag::MESSAGE_PAYLOAD)
    }

    /// The `sar_*` triple of a segment of a concatenated message:
    /// (reference, total segments, this segment's number).
    pub fn sar(&self) -> Option<(u16, u8, u8)> {
        let reference = self.get_u16(tag::SAR_MSG_REF_NUM)?;
        let total = self.get_u8(tag::SAR_TOTAL_SEGMENTS)?;
        let seqnum = self.get_u8(tag::SAR_SEGMENT_SEQNUM)?;
        Some((reference, total, seqnum))
    }

    /// Sets the `sar_*` triple.
    pub fn set_sar(&mut self, reference: u16, total: u8, seqnum: u8) {
        self.set(
            tag::SAR_MSG_REF_NUM,
            Bytes::copy_from_slice(&reference.to_be_bytes()),
        );
        self.set(tag::SAR_TOTAL_SEGMENTS, vec![total]);
        self.set(tag::SAR_SEGMENT_SEQNUM, vec![seqnum]);
    }

    fn get_u16(&self, tag: u16) -> Option<u16> {
        match self.get(tag)?.as_ref() {
            [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    fn get_u8(&self, tag: u16) -> Option<u8> {
        match self.get(tag)?.as_ref() {
            [value] => Some(*value),
            _ => None,
        }
    }
}
