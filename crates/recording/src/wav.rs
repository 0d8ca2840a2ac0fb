//! 16-bit PCM WAV (RIFF) at 8 kHz, streamed both ways: [`WavWriter`] writes
//! the header, then frames as they come, and sets the sizes at the end (or
//! writes them first when the length is known, hashing the file as it goes);
//! [`WavReader`] checks the header with errors that name what is wrong and
//! reads frames in chunks. The merge (SPEC R2) reads the cloud recording and
//! writes the merged file with these; memory is one chunk.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The only rate this crate reads and writes: G.711's.
pub const SAMPLE_RATE: u32 = 8000;
/// Bits per sample, the only width read and written.
pub const BITS: u16 = 16;
/// The canonical header's length (RIFF, fmt of 16 bytes, data header).
pub const HEADER_LEN: usize = 44;
/// The most channels read or written.
pub const MAX_CHANNELS: u16 = 8;
/// Data size written while the length is unknown (patched at the end), and
/// read as "up to the end of the file" (a recorder that never finished).
const UNKNOWN_SIZE: u32 = u32::MAX;

const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// What is wrong with a WAV file, or why it cannot be written.
#[derive(Debug, Error)]
pub enum WavError {
    #[error("WAV I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a RIFF file")]
    NotRiff,
    #[error("RIFF file but not WAVE")]
    NotWave,
    /// The format tag is not PCM (1), nor extensible with a PCM sub-format.
    #[error("not PCM: format tag {format:#06x}")]
    NotPcm { format: u16 },
    #[error("sample rate {rate} Hz, expected {SAMPLE_RATE}")]
    WrongRate { rate: u32 },
    #[error("{bits} bits per sample, expected {BITS}")]
    WrongBits { bits: u16 },
    #[error("{channels} channels, expected 1 to {MAX_CHANNELS}")]
    WrongChannels { channels: u16 },
    /// Byte rate or block alignment disagree with channels and bits.
    #[error("inconsistent fmt chunk: {0}")]
    Inconsistent(&'static str),
    /// The file ends inside the header, or before the data its header
    /// declares: `frames` whole frames were there.
    #[error("truncated: {what}")]
    Truncated { what: &'static str, frames: u64 },
    #[error("data chunk before the fmt chunk")]
    DataBeforeFmt,
    #[error("no data chunk")]
    NoData,
    #[error("{frames} frames do not fit a WAV file's 32-bit sizes")]
    TooLong { frames: u64 },
    /// A writer with a declared length got another number of frames.
    #[error("declared {declared} frames, wrote {written}")]
    FrameCount { declared: u64, written: u64 },
    #[error("{samples} samples are not whole frames of {channels} channels")]
    PartialFrame { samples: usize, channels: u16 },
}

/// The canonical 44-byte header of 8 kHz 16-bit PCM with `channels` and
/// `frames` (or the unknown size if `None`).
pub fn header(channels: u16, frames: Option<u64>) -> Result<[u8; HEADER_LEN], WavError> {
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(WavError::WrongChannels { channels });
    }
    let block = u32::from(channels) * u32::from(BITS / 8);
    let data = match frames {
        Some(frames) => u32::try_from(frames * u64::from(block))
            .ok()
            .filter(|d| *d <= u32::MAX - 36 && *d != UNKNOWN_SIZE)
            .ok_or(WavError::TooLong { frames })?,
        None => UNKNOWN_SIZE,
    };
    let riff = data.saturating_add(36);
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * block).to_le_bytes());
    h[32..34].copy_from_slice(&(block as u16).to_le_bytes());
    h[34..36].copy_from_slice(&BITS.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    Ok(h)
}

/// What a finished writer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavSummary {
    pub frames: u64,
    /// The file's length in bytes.
    pub bytes: u64,
    /// SHA-256 of the whole file, for a writer made with a declared length.
    pub sha256: Option<[u8; 32]>,
}

/// Writes 8 kHz 16-bit PCM frames as they come.
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    frames: u64,
    declared: Option<u64>,
    hasher: Option<Sha256>,
    bytes: Vec<u8>,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a header whose sizes [`finish`](Self::finish) sets. Until then
    /// they read as "to the end of the file", so a reader can follow a
    /// recording in progress.
    pub fn new(mut out: W, channels: u16) -> Result<Self, WavError> {
        out.write_all(&header(channels, None)?)?;
        Ok(Self::with(out, channels, None))
    }

    /// Writes the final header for `frames` frames first; `finish` checks
    /// the count. The file is hashed (SHA-256) as it is written, since no
    /// byte changes afterwards.
    pub fn with_frames(mut out: W, channels: u16, frames: u64) -> Result<Self, WavError> {
        let h = header(channels, Some(frames))?;
        out.write_all(&h)?;
        let mut w = Self::with(out, channels, Some(frames));
        if let Some(hasher) = &mut w.hasher {
            hasher.update(h);
        }
        Ok(w)
    }

    fn with(out: W, channels: u16, declared: Option<u64>) -> Self {
        WavWriter {
            out,
            channels,
            frames: 0,
            declared,
            hasher: declared.map(|_| Sha256::new()),
            bytes: Vec::new(),
        }
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Appends whole frames, channels interleaved.
    pub fn write_frames(&mut self, interleaved: &[i16]) -> Result<(), WavError> {
        let channels = usize::from(self.channels);
        if interleaved.len() % channels != 0 {
            return Err(WavError::PartialFrame {
                samples: interleaved.len(),
                channels: self.channels,
            });
        }
        let frames = (interleaved.len() / channels) as u64;
        if let Some(declared) = self.declared {
            if self.frames + frames > declared {
                return Err(WavError::FrameCount {
                    declared,
                    written: self.frames + frames,
                });
            }
        }
        self.bytes.clear();
        self.bytes
            .extend(interleaved.iter().flat_map(|s| s.to_le_bytes()));
        self.out.write_all(&self.bytes)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&self.bytes);
        }
        self.frames += frames;
        Ok(())
    }

    /// Sets the sizes (or checks the declared count), flushes and returns
    /// the writer with what was written.
    pub fn finish(mut self) -> Result<(W, WavSummary), WavError> {
        let data = self.frames * u64::from(self.channels) * 2;
        match self.declared {
            Some(declared) if declared != self.frames => {
                return Err(WavError::FrameCount {
                    declared,
                    written: self.frames,
                })
            }
            Some(_) => {}
            None => {
                let h = header(self.channels, Some(self.frames))?;
                self.out.seek(SeekFrom::Start(0))?;
                self.out.write_all(&h)?;
                self.out.seek(SeekFrom::Start(HEADER_LEN as u64 + data))?;
            }
        }
        self.out.flush()?;
        let summary = WavSummary {
            frames: self.frames,
            bytes: HEADER_LEN as u64 + data,
            sha256: self.hasher.take().map(|h| h.finalize().into()),
        };
        Ok((self.out, summary))
    }
}

/// The format of a WAV file as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    pub channels: u16,
    /// Whole frames the data chunk declares; `None` when its size is the
    /// unknown marker (read to the end of the file).
    pub frames: Option<u64>,
    /// Byte offset of the first sample.
    pub data_offset: u64,
}

/// Reads 8 kHz 16-bit PCM frames in chunks.
pub struct WavReader<R: Read> {
    src: R,
    format: WavFormat,
    /// Frames read (or skipped to) so far.
    position: u64,
    bytes: Vec<u8>,
}

impl<R: Read> WavReader<R> {
    /// Reads and checks the header up to the data chunk: RIFF/WAVE, PCM
    /// (or extensible PCM), 8000 Hz, 16 bits, 1–8 channels, consistent
    /// block alignment. Chunks other than fmt and data are skipped.
    pub fn new(mut src: R) -> Result<Self, WavError> {
        let mut riff = [0u8; 12];
        read_header_bytes(&mut src, &mut riff, "RIFF header")?;
        if &riff[0..4] != b"RIFF" {
            return Err(WavError::NotRiff);
        }
        if &riff[8..12] != b"WAVE" {
            return Err(WavError::NotWave);
        }
        let mut offset = 12u64;
        let mut channels = None;
        loop {
            let mut chunk = [0u8; 8];
            match read_exact_or_eof(&mut src, &mut chunk)? {
                0 => return Err(WavError::NoData),
                8 => {}
                _ => {
                    return Err(WavError::Truncated {
                        what: "chunk header",
                        frames: 0,
                    })
                }
            }
            offset += 8;
            let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            match &chunk[0..4] {
                b"fmt " => {
                    if !(16..=1024).contains(&size) {
                        return Err(WavError::Inconsistent("fmt chunk size"));
                    }
                    let mut fmt = vec![0u8; size as usize + (size as usize & 1)];
                    read_header_bytes(&mut src, &mut fmt, "fmt chunk")?;
                    offset += fmt.len() as u64;
                    channels = Some(check_fmt(&fmt)?);
                }
                b"data" => {
                    let channels = channels.ok_or(WavError::DataBeforeFmt)?;
                    let block = u64::from(channels) * 2;
                    let frames = (size != UNKNOWN_SIZE).then(|| u64::from(size) / block);
                    return Ok(WavReader {
                        src,
                        format: WavFormat {
                            channels,
                            frames,
                            data_offset: offset,
                        },
                        position: 0,
                        bytes: Vec::new(),
                    });
                }
                _ => {
                    let skip = u64::from(size) + u64::from(size & 1);
                    let skipped = std::io::copy(&mut (&mut src).take(skip), &mut std::io::sink())?;
                    if skipped < skip {
                        return Err(WavError::Truncated {
                            what: "chunk before the data",
                            frames: 0,
                        });
                    }
                    offset += skip;
                }
            }
        }
    }

    pub fn format(&self) -> WavFormat {
        self.format
    }

    pub fn channels(&self) -> u16 {
        self.format.channels
    }

    /// The next frame's index.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Appends up to `max_frames` frames (channels interleaved) to `out` and
    /// returns how many; 0 at the end of the data. A file that ends before
    /// the frames its header declares, or inside a frame, gives
    /// [`WavError::Truncated`] once the whole frames before it are read.
    pub fn read_frames(
        &mut self,
        out: &mut Vec<i16>,
        max_frames: usize,
    ) -> Result<usize, WavError> {
        let block = usize::from(self.format.channels) * 2;
        let left = match self.format.frames {
            Some(frames) => frames.saturating_sub(self.position),
            None => u64::MAX,
        };
        let want = (max_frames as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        self.bytes.resize(want * block, 0);
        let got = read_exact_or_eof(&mut self.src, &mut self.bytes)?;
        let frames = got / block;
        out.extend(
            self.bytes[..frames * block]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        self.position += frames as u64;
        if got < want * block {
            if self.format.frames.is_none() {
                // Unknown length: the file ends here (a partial last frame
                // of a recorder that died mid-write is dropped).
                self.format.frames = Some(self.position);
            } else if frames == 0 {
                return Err(WavError::Truncated {
                    what: "data shorter than its header says",
                    frames: self.position,
                });
            }
            // Otherwise hand out the whole frames; the next call reports.
        }
        Ok(frames)
    }
}

impl<R: Read + Seek> WavReader<R> {
    /// Moves to frame `frame` (clamped to the declared end).
    pub fn seek_frame(&mut self, frame: u64) -> Result<(), WavError> {
        let frame = self.format.frames.map_or(frame, |f| frame.min(f));
        let block = u64::from(self.format.channels) * 2;
        self.src
            .seek(SeekFrom::Start(self.format.data_offset + frame * block))?;
        self.position = frame;
        Ok(())
    }
}

/// Checks a fmt chunk's body; returns the channel count.
fn check_fmt(fmt: &[u8]) -> Result<u16, WavError> {
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([fmt[i], fmt[i + 1], fmt[i + 2], fmt[i + 3]]);
    let format = u16_at(0);
    let pcm = match format {
        FORMAT_PCM => true,
        // WAVE_FORMAT_EXTENSIBLE: cbSize 22, then the sub-format GUID whose
        // first two bytes are the format tag.
        FORMAT_EXTENSIBLE => fmt.len() >= 40 && u16_at(24) == FORMAT_PCM,
        _ => false,
    };
    if !pcm {
        return Err(WavError::NotPcm { format });
    }
    let channels = u16_at(2);
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(WavError::WrongChannels { channels });
    }
    let rate = u32_at(4);
    if rate != SAMPLE_RATE {
        return Err(WavError::WrongRate { rate });
    }
    let bits = u16_at(14);
    if bits != BITS {
        return Err(WavError::WrongBits { bits });
    }
    let block = u32::from(channels) * 2;
    if u32::from(u16_at(12)) != block {
        return Err(WavError::Inconsistent("block alignment"));
    }
    if u32_at(8) != rate * block {
        return Err(WavError::Inconsistent("byte rate"));
    }
    Ok(channels)
}

fn read_header_bytes(
    src: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), WavError> {
    if read_exact_or_eof(src, buf)? < buf.len() {
        return Err(WavError::Truncated { what, frames: 0 });
    }
    Ok(())
}

/// Fills `buf` unless the source ends first; returns the bytes read.
fn read_exact_or_eof(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn write(frames: &[i16], channels: u16) -> Vec<u8> {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), channels).unwrap();
        for chunk in frames.chunks(6) {
            w.write_frames(chunk).unwrap();
        }
        w.finish().unwrap().0.into_inner()
    }

    #[test]
    fn round_trip_in_chunks() {
        let samples: Vec<i16> = (0..2000)
            .map(|i| (i * 37 % 65_536 - 32_768) as i16)
            .collect();
        let file = write(&samples, 2);
        assert_eq!(file.len(), HEADER_LEN + 4000);
        assert_eq!(&file[..HEADER_LEN], &header(2, Some(1000)).unwrap());
        let mut r = WavReader::new(Cursor::new(&file)).unwrap();
        assert_eq!(
            r.format(),
            WavFormat {
                channels: 2,
                frames: Some(1000),
                data_offset: 44
            }
        );
        let mut out = Vec::new();
        let mut calls = 0;
        while r.read_frames(&mut out, 333).unwrap() > 0 {
            calls += 1;
            assert!(calls < 10);
        }
        assert_eq!(out, samples);
        r.seek_frame(500).unwrap();
        out.clear();
        assert_eq!(r.read_frames(&mut out, 1).unwrap(), 1);
        assert_eq!(out, samples[1000..1002]);
    }

    #[test]
    fn declared_length_hashes_the_file() {
        let samples = [1i16, -1, 2, -2, 3, -3];
        let w = WavWriter::with_frames(Cursor::new(Vec::new()), 2, 3).unwrap();
        let mut w = w;
        w.write_frames(&samples[..4]).unwrap();
        w.write_frames(&samples[4..]).unwrap();
        let (out, summary) = w.finish().unwrap();
        let file = out.into_inner();
        assert_eq!(file, write(&samples, 2));
        assert_eq!(summary.sha256, Some(Sha256::digest(&file).into()));
        let mut short = WavWriter::with_frames(Cursor::new(Vec::new()), 2, 3).unwrap();
        short.write_frames(&samples[..2]).unwrap();
        assert!(matches!(
            short.finish(),
            Err(WavError::FrameCount {
                declared: 3,
                written: 1
            })
        ));
    }

    #[test]
    fn names_what_is_wrong_with_a_header() {
        let good = write(&[0; 8], 2);
        let with = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            WavReader::new(Cursor::new(f)).err()
        };
        assert!(matches!(with(0, b"RIFX"), Some(WavError::NotRiff)));
        assert!(matches!(with(8, b"AVI "), Some(WavError::NotWave)));
        assert!(matches!(
            with(20, &3u16.to_le_bytes()),
            Some(WavError::NotPcm { format: 3 })
        ));
        assert!(matches!(
            with(24, &16_000u32.to_le_bytes()),
            Some(WavError::WrongRate { rate: 16_000 })
        ));
        assert!(matches!(
            with(34, &8u16.to_le_bytes()),
            Some(WavError::WrongBits { bits: 8 })
        ));
        assert!(matches!(
            with(32, &2u16.to_le_bytes()),
            Some(WavError::Inconsistent(_))
        ));
        for cut in [0, 11, 20, 40] {
            assert!(
                matches!(
                    WavReader::new(Cursor::new(&good[..cut])),
                    Err(WavError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            WavReader::new(Cursor::new(&good[..36])),
            Err(WavError::NoData)
        ));
    }

    #[test]
    fn truncated_data_gives_the_whole_frames_then_an_error() {
        let file = write(&[5; 20], 2);
        let cut = &file[..HEADER_LEN + 4 * 7 + 3];
        let mut r = WavReader::new(Cursor::new(cut)).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.read_frames(&mut out, 100).unwrap(), 7);
        assert!(matches!(
            r.read_frames(&mut out, 100),
            Err(WavError::Truncated { frames: 7, .. })
        ));
        assert_eq!(out.len(), 14);
    }

    #[test]
    fn unknown_size_reads_to_the_end_and_other_chunks_are_skipped() {
        // A recorder that died before finishing, with a LIST chunk first.
        let mut f = header(1, None).unwrap()[..36].to_vec();
        f.extend_from_slice(b"LIST");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&[1, 2, 3, 0]); // odd size, padded
        f.extend_from_slice(b"data");
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        for s in [7i16, 8, 9] {
            f.extend_from_slice(&s.to_le_bytes());
        }
        let mut r = WavReader::new(Cursor::new(f)).unwrap();
        assert_eq!(r.format().frames, None);
        let mut out = Vec::new();
        assert_eq!(r.read_frames(&mut out, 10).unwrap(), 3);
        assert_eq!(r.read_frames(&mut out, 10).unwrap(), 0);
        assert_eq!(out, [7, 8, 9]);
    }
}
