//! Wire format: framing, decoding and encoding of [`Pdu`]s.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    command_id, Address, Bind, BindResp, Body, CommandStatus, DataSm, MessageIdResp, Pdu,
    ShortMessage, Tlv, Tlvs,
};

/// Length of the PDU header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;

/// The largest PDU we accept or send. A 64 KiB `message_payload` plus the fixed
/// fields fits; anything larger is a corrupt length prefix, not a message.
pub const MAX_PDU_LEN: usize = 70_000;

/// The length prefix cannot be trusted: the byte stream cannot be resynchronised,
/// so the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `command_length` is below the 16-octet header.
    #[error("command_length {0} is shorter than the 16-octet header")]
    TooShort(u32),
    /// `command_length` is above [`MAX_PDU_LEN`].
    #[error("command_length {0} exceeds the maximum of {MAX_PDU_LEN} octets")]
    TooLong(u32),
}

/// How many bytes the PDU at the start of `buf` takes, or `None` if more bytes
/// are needed to know (fewer than 4) or to hold it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let command_length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let len = command_length as usize;
    if len < HEADER_LEN {
        return Err(FrameError::TooShort(command_length));
    }
    if len > MAX_PDU_LEN {
        return Err(FrameError::TooLong(command_length));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// A complete frame that is not a valid PDU. The header could be read, so the
/// peer can be answered with a `generic_nack` carrying its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than its header, or its length does not match.
    #[error("frame of {actual} octets does not match command_length {declared}")]
    Length {
        /// `command_length` from the header.
        declared: u32,
        /// Octets actually handed to the decoder.
        actual: usize,
    },
    /// A `command_id` we do not speak.
    #[error("unsupported command_id 0x{command_id:08X} (sequence {sequence})")]
    UnknownCommand {
        /// The command.
        command_id: u32,
        /// Its sequence number.
        sequence: u32,
    },
    /// A known command whose body is wrong.
    #[error("malformed {field} in command 0x{command_id:08X} (sequence {sequence}): {reason}")]
    Malformed {
        /// The command.
        command_id: u32,
        /// Its sequence number.
        sequence: u32,
        /// The field that could not be read.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The sequence number to answer with, if the header was readable.
    pub fn sequence(&self) -> Option<u32> {
        match self {
            DecodeError::Length { .. } => None,
            DecodeError::UnknownCommand { sequence, .. }
            | DecodeError::Malformed { sequence, .. } => Some(*sequence),
        }
    }

    /// The `command_status` for the `generic_nack` that answers this error.
    pub fn nack_status(&self) -> CommandStatus {
        match self {
            DecodeError::Length { .. } => CommandStatus::ESME_RINVCMDLEN,
            DecodeError::UnknownCommand { .. } => CommandStatus::ESME_RINVCMDID,
            DecodeError::Malformed { field: "tlv", .. } => CommandStatus::ESME_RINVOPTPARSTREAM,
            DecodeError::Malformed {
                field: "sm_length", ..
            } => CommandStatus::ESME_RINVMSGLEN,
            DecodeError::Malformed { .. } => CommandStatus::ESME_RINVCMDLEN,
        }
    }
}

/// A PDU that cannot be put on the wire as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A C-octet string is longer than the field allows.
    #[error("{field} is {len} octets long; at most {max} fit")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length without the terminating NUL.
        len: usize,
        /// The most the field takes without the terminating NUL.
        max: usize,
    },
    /// A C-octet string contains a NUL, which would end it early on the wire.
    #[error("{field} contains a NUL octet")]
    EmbeddedNul {
        /// The field.
        field: &'static str,
    },
    /// The whole PDU is larger than [`MAX_PDU_LEN`].
    #[error("PDU of {0} octets exceeds the maximum of {MAX_PDU_LEN}")]
    PduTooLong(usize),
}

impl Pdu {
    /// Parses one complete frame, as delimited by [`frame_len`].
    pub fn decode(frame: &[u8]) -> Result<Pdu, DecodeError> {
        let declared = frame
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        if frame.len() < HEADER_LEN || declared as usize != frame.len() {
            return Err(DecodeError::Length {
                declared,
                actual: frame.len(),
            });
        }
        let word =
            |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        let command = word(4);
        let status = CommandStatus(word(8));
        let sequence = word(12);
        let mut reader = Reader {
            buf: &frame[HEADER_LEN..],
            command,
            sequence,
        };
        let body = reader.body(status)?;
        if !reader.buf.is_empty() {
            return Err(reader.malformed("body", "trailing octets after the last field"));
        }
        Ok(Pdu {
            sequence,
            status,
            body,
        })
    }

    /// Serialises the PDU, checking every field's length.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(64);
        self.encode_into(&mut out)?;
        Ok(out.freeze())
    }

    /// Appends the serialised PDU to `out`. On error `out` is left as it was.
    pub fn encode_into(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.write(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u32(0); // command_length, patched below
        out.put_u32(self.body.command_id());
        out.put_u32(self.status.0);
        out.put_u32(self.sequence);
        let mut w = Writer { out };
        match &self.body {
            Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
                w.bind(b)?
            }
            Body::BindReceiverResp(r)
            | Body::BindTransmitterResp(r)
            | Body::BindTransceiverResp(r) => {
                w.cstr("system_id", &r.system_id, 16)?;
                w.tlvs(&r.tlvs)?;
            }
            Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::GenericNack => {}
            Body::SubmitSm(m) | Body::DeliverSm(m) => w.short_message(m)?,
            Body::SubmitSmResp(r) | Body::DeliverSmResp(r) => {
                w.cstr("message_id", &r.message_id, 65)?;
                w.tlvs(&r.tlvs)?;
            }
            Body::DataSm(d) => w.data_sm(d)?,
            Body::DataSmResp(r) => {
                w.cstr("message_id", &r.message_id, 65)?;
                w.tlvs(&r.tlvs)?;
            }
        }
        let len = out.len() - start;
        if len > MAX_PDU_LEN {
            return Err(EncodeError::PduTooLong(len));
        }
        out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    command: u32,
    sequence: u32,
}

impl Reader<'_> {
    fn malformed(&self, field: &'static str, reason: &'static str) -> DecodeError {
        DecodeError::Malformed {
            command_id: self.command,
            sequence: self.sequence,
            field,
            reason,
        }
    }

    fn body(&mut self, status: CommandStatus) -> Result<Body, DecodeError> {
        use command_id::*;
        Ok(match self.command {
            BIND_RECEIVER => Body::BindReceiver(self.bind()?),
            BIND_TRANSMITTER => Body::BindTransmitter(self.bind()?),
            BIND_TRANSCEIVER => Body::BindTransceiver(self.bind()?),
            BIND_RECEIVER_RESP => Body::BindReceiverResp(self.bind_resp()?),
            BIND_TRANSMITTER_RESP => Body::BindTransmitterResp(self.bind_resp()?),
            BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp(self.bind_resp()?),
            UNBIND => Body::Unbind,
            UNBIND_RESP => Body::UnbindResp,
            ENQUIRE_LINK => Body::EnquireLink,
            ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            GENERIC_NACK => Body::GenericNack,
            SUBMIT_SM => Body::SubmitSm(self.short_message()?),
            DELIVER_SM => Body::DeliverSm(self.short_message()?),
            // Error responses may omit the body (SMPP 3.4, 4.4.2).
            // SMPP 3.4 gives these responses no TLVs, but 5.0 SMSCs and vendors
            // add some: accept and keep them rather than lose the answer.
            SUBMIT_SM_RESP => Body::SubmitSmResp(self.message_id_resp(status)?),
            // Many SMSCs and ESMEs send deliver_sm_resp without its (always
            // empty) message_id: accept that, whatever the status.
            DELIVER_SM_RESP => Body::DeliverSmResp(self.message_id_resp(CommandStatus(1))?),
            DATA_SM => Body::DataSm(self.data_sm()?),
            DATA_SM_RESP => Body::DataSmResp(self.message_id_resp(status)?),
            command_id => {
                return Err(DecodeError::UnknownCommand {
                    command_id,
                    sequence: self.sequence,
                })
            }
        })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (&first, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.malformed(field, "body ends before this field"))?;
        self.buf = rest;
        Ok(first)
    }

    /// A NUL-terminated string of at most `max` octets including the NUL.
    fn cstr(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let window = &self.buf[..self.buf.len().min(max)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(if self.buf.len() < max {
                self.malformed(field, "body ends before the terminating NUL")
            } else {
                self.malformed(field, "longer than the field allows")
            });
        };
        // C-octet strings are ASCII in practice; an SMSC that sends Latin-1 (an
        // alphanumeric sender with an accent) must not cost us the MO or receipt.
        let bytes = &self.buf[..nul];
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        self.buf = &self.buf[nul + 1..];
        Ok(text)
    }

    fn bytes(&mut self, field: &'static str, len: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(self.malformed(field, "body ends inside this field"));
        }
        let (value, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(Bytes::copy_from_slice(value))
    }

    fn tlvs(&mut self) -> Result<Tlvs, DecodeError> {
        let mut tlvs = Vec::new();
        while !self.buf.is_empty() {
            if self.buf.len() < 4 {
                return Err(self.malformed("tlv", "truncated tag/length"));
            }
            let tag = u16::from_be_bytes([self.buf[0], self.buf[1]]);
            let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            self.buf = &self.buf[4..];
            if self.buf.len() < len {
                return Err(self.malformed("tlv", "value runs past the end of the PDU"));
            }
            let value = self.bytes("tlv", len)?;
            tlvs.push(Tlv { tag, value });
        }
        Ok(Tlvs(tlvs))
    }

    fn address(&mut self, prefix: Field3) -> Result<Address, DecodeError> {
        Ok(Address {
            ton: self.u8(prefix.0)?,
            npi: self.u8(prefix.1)?,
            addr: self.cstr(prefix.2, 21)?,
        })
    }

    fn bind(&mut self) -> Result<Bind, DecodeError> {
        Ok(Bind {
            system_id: self.cstr("system_id", 16)?,
            password: self.cstr("password", 9)?,
            system_type: self.cstr("system_type", 13)?,
            interface_version: self.u8("interface_version")?,
            addr_ton: self.u8("addr_ton")?,
            addr_npi: self.u8("addr_npi")?,
            address_range: self.cstr("address_range", 41)?,
        })
    }

    fn bind_resp(&mut self) -> Result<BindResp, DecodeError> {
        if self.buf.is_empty() {
            return Ok(BindResp::default());
        }
        Ok(BindResp {
            system_id: self.cstr("system_id", 16)?,
            tlvs: self.tlvs()?,
        })
    }

    fn short_message(&mut self) -> Result<ShortMessage, DecodeError> {
        let service_type = self.cstr("service_type", 6)?;
        let source = self.address(SOURCE)?;
        let destination = self.address(DESTINATION)?;
        let esm_class = self.u8("esm_class")?;
        let protocol_id = self.u8("protocol_id")?;
        let priority_flag = self.u8("priority_flag")?;
        let schedule_delivery_time = self.cstr("schedule_delivery_time", 17)?;
        let validity_period = self.cstr("validity_period", 17)?;
        let registered_delivery = self.u8("registered_delivery")?;
        let replace_if_present_flag = self.u8("replace_if_present_flag")?;
        let data_coding = self.u8("data_coding")?;
        let sm_default_msg_id = self.u8("sm_default_msg_id")?;
        let sm_length = self.u8("sm_length")? as usize;
        if sm_length > 254 {
            return Err(self.malformed("sm_length", "above the maximum of 254"));
        }
        let short_message = self.bytes("short_message", sm_length)?;
        Ok(ShortMessage {
            service_type,
            source,
            destination,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
            tlvs: self.tlvs()?,
        })
    }

    fn data_sm(&mut self) -> Result<DataSm, DecodeError> {
        Ok(DataSm {
            service_type: self.cstr("service_type", 6)?,
            source: self.address(SOURCE)?,
            destination: self.address(DESTINATION)?,
            esm_class: self.u8("esm_class")?,
            registered_delivery: self.u8("registered_delivery")?,
            data_coding: self.u8("data_coding")?,
            tlvs: self.tlvs()?,
        })
    }

    fn message_id_resp(&mut self, status: CommandStatus) -> Result<MessageIdResp, DecodeError> {
        if self.buf.is_empty() && !status.is_ok() {
            return Ok(MessageIdResp::default());
        }
        let message_id = self.cstr("message_id", 65)?;
        let tlvs = self.tlvs()?;
        Ok(MessageIdResp { message_id, tlvs })
    }
}

type Field3 = (&'static str, &'static str, &'static str);
const SOURCE: Field3 = ("source_addr_ton", "source_addr_npi", "source_addr");
const DESTINATION: Field3 = ("dest_addr_ton", "dest_addr_npi", "destination_addr");

struct Writer<'a> {
    out: &'a mut BytesMut,
}

impl Writer<'_> {
    /// Writes `text` and its NUL; `max` counts the NUL, as the specification does.
    fn cstr(&mut self, field: &'static str, text: &str, max: usize) -> Result<(), EncodeError> {
        if text.len() + 1 > max {
            return Err(EncodeError::TooLong {
                field,
                len: text.len(),
                max: max - 1,
            });
        }
        if text.as_bytes().contains(&0) {
            return Err(EncodeError::EmbeddedNul { field });
        }
        self.out.put_slice(text.as_bytes());
        self.out.put_u8(0);
        Ok(())
    }

    fn address(&mut self, names: Field3, address: &Address) -> Result<(), EncodeError> {
        self.out.put_u8(address.ton);
        self.out.put_u8(address.npi);
        self.cstr(names.2, &address.addr, 21)
    }

    fn tlvs(&mut self, tlvs: &Tlvs) -> Result<(), EncodeError> {
        for tlv in &tlvs.0 {
            let len = u16::try_from(tlv.value.len()).map_err(|_| EncodeError::TooLong {
                field: "tlv",
                len: tlv.value.len(),
                max: u16::MAX as usize,
            })?;
            self.out.put_u16(tlv.tag);
            self.out.put_u16(len);
            self.out.put_slice(&tlv.value);
        }
        Ok(())
    }

    fn bind(&mut self, bind: &Bind) -> Result<(), EncodeError> {
        self.cstr("system_id", &bind.system_id, 16)?;
        self.cstr("password", &bind.password, 9)?;
        self.cstr("system_type", &bind.system_type, 13)?;
        self.out.put_u8(bind.interface_version);
        self.out.put_u8(bind.addr_ton);
        self.out.put_u8(bind.addr_npi);
        self.cstr("address_range", &bind.address_range, 41)
    }

    fn short_message(&mut self, m: &ShortMessage) -> Result<(), EncodeError> {
        if m.short_message.len() > 254 {
            return Err(EncodeError::TooLong {
                field: "short_message",
                len: m.short_message.len(),
                max: 254,
            });
        }
        self.cstr("service_type", &m.service_type, 6)?;
        self.address(SOURCE, &m.source)?;
        self.address(DESTINATION, &m.destination)?;
        self.out.put_u8(m.esm_class);
        self.out.put_u8(m.protocol_id);
        self.out.put_u8(m.priority_flag);
        self.cstr("schedule_delivery_time", &m.schedule_delivery_time, 17)?;
        self.cstr("validity_period", &m.validity_period, 17)?;
        self.out.put_u8(m.registered_delivery);
        self.out.put_u8(m.replace_if_present_flag);
        self.out.put_u8(m.data_coding);
        self.out.put_u8(m.sm_default_msg_id);
        self.out.put_u8(m.short_message.len() as u8);
        self.out.put_slice(&m.short_message);
        self.tlvs(&m.tlvs)
    }

    fn data_sm(&mut self, d: &DataSm) -> Result<(), EncodeError> {
        self.cstr("service_type", &d.service_type, 6)?;
        self.address(SOURCE, &d.source)?;
        self.address(DESTINATION, &d.destination)?;
        self.out.put_u8(d.esm_class);
        self.out.put_u8(d.registered_delivery);
        self.out.put_u8(d.data_coding);
        self.tlvs(&d.tlvs)
    }
}
