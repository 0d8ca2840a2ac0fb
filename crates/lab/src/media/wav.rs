//! The cloud recording's files: a WAV (RIFF, PCM, 16-bit little-endian,
//! interleaved channels) and its JSON sidecar.
//!
//! The format is fixed, because hotsite's merge reads it (SPEC R2):
//!
//! - `cloud.wav`: the canonical 44-byte header (`RIFF`, `WAVE`, a 16-byte
//!   `fmt ` chunk with format 1, 2 channels, 8000 Hz, 32000 bytes/s, block
//!   align 4, 16 bits; then `data`), channel 0 what the media server
//!   *received*, channel 1 what it *sent*, one sample timeline from the
//!   moment it sent its `200 OK`;
//! - `cloud.json`: `{"call_id":"…","started_unix_ms":N,"sample_rate":8000,"channels":["received","sent"]}`,
//!   exactly these keys in this order, no spaces.
//!
//! [`decode_wav`] reads any PCM 16-bit WAV (skipping chunks it does not know),
//! for tests and tools.

use serde::{Deserialize, Serialize};

/// The sidecar of a cloud recording (`cloud.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudRecordingMeta {
    /// The call's SIP Call-ID, as received.
    pub call_id: String,
    /// When sample 0 was recorded: the `200 OK` left the media server (Unix
    /// milliseconds).
    pub started_unix_ms: u64,
    /// Always 8000.
    pub sample_rate: u32,
    /// Always `["received", "sent"]`: channel 0, channel 1.
    pub channels: Vec<String>,
}

impl CloudRecordingMeta {
    /// The sidecar of a lab recording.
    pub fn new(call_id: &str, started_unix_ms: u64) -> CloudRecordingMeta {
        CloudRecordingMeta {
            call_id: call_id.to_owned(),
            started_unix_ms,
            sample_rate: super::signal::SAMPLE_RATE,
            channels: vec!["received".to_owned(), "sent".to_owned()],
        }
    }

    /// The JSON text, in the exact form the merge reads.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A decoded WAV: its rate and one vector of samples per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// The samples, channel by channel.
    pub channels: Vec<Vec<i16>>,
}

/// Why bytes are not a WAV this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file, or cut short.
    #[error("not a RIFF WAVE file: {0}")]
    NotWav(&'static str),
    /// A WAV, but not 16-bit PCM.
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
}

/// The WAV bytes of `channels` at `sample_rate`, 16-bit PCM, interleaved.
/// Channels shorter than the longest are padded with silence.
pub fn encode_wav(sample_rate: u32, channels: &[&[i16]]) -> Vec<u8> {
    let channel_count = channels.len().max(1);
    let frames = channels.iter().map(|c| c.len()).max().unwrap_or(0);
    let data_len = frames * channel_count * 2;
    let mut out = Vec::with_capacity(44 + data_len);
    let block_align = (channel_count * 2) as u16;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(channel_count as u16).to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for frame in 0..frames {
        for channel in channels {
            let sample = channel.get(frame).copied().unwrap_or(0);
            out.extend_from_slice(&sample.to_le_bytes());
        }
    }
    out
}

/// Reads a 16-bit PCM WAV.
pub fn decode_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav("no RIFF/WAVE header"));
    }
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut position = 12;
    while position + 8 <= bytes.len() {
        let id = &bytes[position..position + 4];
        let len = u32::from_le_bytes([
            bytes[position + 4],
            bytes[position + 5],
            bytes[position + 6],
            bytes[position + 7],
        ]) as usize;
        let body_start = position + 8;
        let body_end = body_start
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or(WavError::NotWav("a chunk runs past the end"))?;
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(WavError::NotWav("fmt chunk too short"));
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => {
                let (tag, channel_count, sample_rate, bits) =
                    format.ok_or(WavError::NotWav("data before fmt"))?;
                if tag != 1 || bits != 16 || channel_count == 0 {
                    return Err(WavError::Unsupported(format!(
                        "format {tag}, {bits} bits, {channel_count} channels (want PCM, 16 bits)"
                    )));
                }
                let channel_count = usize::from(channel_count);
                let frames = body.len() / (2 * channel_count);
                let mut channels = vec![Vec::with_capacity(frames); channel_count];
                for frame in body.chunks_exact(2 * channel_count) {
                    for (channel, sample) in channels.iter_mut().zip(frame.chunks_exact(2)) {
                        channel.push(i16::from_le_bytes([sample[0], sample[1]]));
                    }
                }
                return Ok(Wav {
                    sample_rate,
                    channels,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        position = body_end + (len & 1);
    }
    Err(WavError::NotWav("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_channel_file_has_the_canonical_header_and_reads_back() {
        let received = [1i16, -2, 3];
        let sent = [100i16, 200];
        let bytes = encode_wav(8_000, &[&received, &sent]);
        assert_eq!(bytes.len(), 44 + 3 * 4);
        let header: &[u8] = &[
            b'R', b'I', b'F', b'F', 48, 0, 0, 0, b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ',
            16, 0, 0, 0, 1, 0, 2, 0, 0x40, 0x1F, 0, 0, 0x00, 0x7D, 0, 0, 4, 0, 16, 0, b'd', b'a',
            b't', b'a', 12, 0, 0, 0,
        ];
        assert_eq!(&bytes[..44], header);
        assert_eq!(&bytes[44..48], &[1, 0, 100, 0]);
        let wav = decode_wav(&bytes).unwrap();
        assert_eq!(wav.sample_rate, 8_000);
        assert_eq!(wav.channels, vec![vec![1, -2, 3], vec![100, 200, 0]]);
    }

    #[test]
    fn the_sidecar_is_exactly_the_agreed_json() {
        let meta = CloudRecordingMeta::new("abc@127.0.0.1", 1_700_000_000_123);
        assert_eq!(
            meta.to_json(),
            r#"{"call_id":"abc@127.0.0.1","started_unix_ms":1700000000123,"sample_rate":8000,"channels":["received","sent"]}"#
        );
    }

    #[test]
    fn broken_files_are_refused() {
        assert!(decode_wav(b"RIFF").is_err());
        let mut bytes = encode_wav(8_000, &[&[1, 2]]);
        bytes.truncate(46);
        assert!(decode_wav(&bytes).is_err());
        let mut eight_bit = encode_wav(8_000, &[&[1, 2]]);
        eight_bit[34] = 8;
        assert!(matches!(
            decode_wav(&eight_bit),
            Err(WavError::Unsupported(_))
        ));
    }
}
