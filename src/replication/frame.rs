//! The wire protocol of the built-in TCP transport.
//!
//! Every frame, both ways, is a 16-byte header and a body, integers big-endian:
//!
//! | at | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `0x4D515250` ("MQRP") |
//! | 4 | 1 | kind |
//! | 5 | 1 | version (1) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | body length |
//! | 12 | 4 | CRC32 (IEEE) of bytes 4..12 and the body |
//!
//! Bodies: `Hello` (slave → master) `u64 segment_size, u64 max_offset, u32 last_epoch`;
//! `Welcome` (master → slave) `u64 segment_size, u64 max_offset, u64 min_offset, u32 count,
//! count × (u32 epoch, u64 start_offset)`; `Data` (master → slave) `u64 offset, u32 epoch,
//! u64 epoch_start`, then the commit-log bytes; `Ack` (slave → master) `u64 offset`; `Heartbeat`
//! (both) `u64 max_offset`; `Refuse` (either side, before it closes) `u16 code`, then a UTF-8
//! reason of at most 1024 bytes.
//!
//! The body length is checked against the reader's maximum from the header alone, before any
//! byte of the body is read or any memory reserved for it.

use std::io::{self, Read};

use super::epoch::EpochEntry;

/// "MQRP".
pub const MAGIC: u32 = 0x4D51_5250;
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 16;
/// Bytes of a `Data` body before the commit-log bytes.
pub const DATA_PREFIX_LEN: usize = 20;
/// Longest `Refuse` reason.
pub const MAX_REASON_LEN: usize = 1024;

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_DATA: u8 = 3;
const KIND_ACK: u8 = 4;
const KIND_HEARTBEAT: u8 = 5;
const KIND_REFUSE: u8 = 6;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The slave introduces itself.
    Hello {
        /// Its commit-log segment size.
        segment_size: u64,
        /// One past its last byte.
        max_offset: u64,
        /// Its last epoch (0: none).
        last_epoch: u32,
    },
    /// The master answers a hello.
    Welcome {
        /// Its commit-log segment size.
        segment_size: u64,
        /// One past its last byte.
        max_offset: u64,
        /// Its first byte.
        min_offset: u64,
        /// Its epoch history, oldest first.
        epochs: Vec<EpochEntry>,
    },
    /// Commit-log bytes.
    Data {
        /// Where they start.
        offset: u64,
        /// The epoch they were written in.
        epoch: u32,
        /// Where that epoch starts.
        epoch_start: u64,
        /// The bytes (never empty).
        bytes: &'a [u8],
    },
    /// The slave holds everything below `offset`.
    Ack {
        /// The acknowledged offset.
        offset: u64,
    },
    /// Nothing else to say: the sender is alive, and its end of log.
    Heartbeat {
        /// The sender's end (a slave: what it holds).
        max_offset: u64,
    },
    /// The sender closes the connection on purpose, and says why.
    Refuse {
        /// A reason code (the transport's `refuse` codes).
        code: u16,
        /// Why.
        reason: &'a str,
    },
}

impl Frame<'_> {
    /// The kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::Hello { .. } => KIND_HELLO,
            Frame::Welcome { .. } => KIND_WELCOME,
            Frame::Data { .. } => KIND_DATA,
            Frame::Ack { .. } => KIND_ACK,
            Frame::Heartbeat { .. } => KIND_HEARTBEAT,
            Frame::Refuse { .. } => KIND_REFUSE,
        }
    }

    /// The kind's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Welcome { .. } => "welcome",
            Frame::Data { .. } => "data",
            Frame::Ack { .. } => "ack",
            Frame::Heartbeat { .. } => "heartbeat",
            Frame::Refuse { .. } => "refuse",
        }
    }
}

/// Why bytes from a peer are not a frame.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The stream does not start a frame here.
    #[error("bad magic {got:#010x}")]
    BadMagic {
        /// What was there.
        got: u32,
    },
    /// A version this build does not speak.
    #[error("unsupported protocol version {got}")]
    UnsupportedVersion {
        /// The version received.
        got: u8,
    },
    /// A kind byte this build does not know.
    #[error("unknown frame kind {got}")]
    UnknownKind {
        /// The kind received.
        got: u8,
    },
    /// The body is longer than the reader accepts.
    #[error("frame body of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared length.
        len: u32,
        /// The reader's maximum.
        max: u32,
    },
    /// The CRC does not match.
    #[error("frame CRC {got:#010x}, expected {expected:#010x}")]
    BadCrc {
        /// Computed.
        expected: u32,
        /// Received.
        got: u32,
    },
    /// The body does not have its kind's shape.
    #[error("malformed frame of kind {kind}: {reason}")]
    Malformed {
        /// The kind.
        kind: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// The stream failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

fn crc(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[4..12]);
    h.update(body);
    h.finalize()
}

fn header(kind: u8, body_len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[4] = kind;
    h[5] = PROTOCOL_VERSION;
    h[8..12].copy_from_slice(&body_len.to_be_bytes());
    h
}

/// Encodes `frame`, appending to `out`.
///
/// # Panics
/// If a body exceeds 4 GiB or a `Refuse` reason exceeds [`MAX_REASON_LEN`] (a bug of the caller,
/// never data from a peer).
pub fn encode(frame: &Frame<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    match frame {
        Frame::Hello {
            segment_size,
            max_offset,
            last_epoch,
        } => {
            out.extend_from_slice(&segment_size.to_be_bytes());
            out.extend_from_slice(&max_offset.to_be_bytes());
            out.extend_from_slice(&last_epoch.to_be_bytes());
        }
        Frame::Welcome {
            segment_size,
            max_offset,
            min_offset,
            epochs,
        } => {
            out.extend_from_slice(&segment_size.to_be_bytes());
            out.extend_from_slice(&max_offset.to_be_bytes());
            out.extend_from_slice(&min_offset.to_be_bytes());
            out.extend_from_slice(&(epochs.len() as u32).to_be_bytes());
            for e in epochs {
                out.extend_from_slice(&e.epoch.to_be_bytes());
                out.extend_from_slice(&e.start_offset.to_be_bytes());
            }
        }
        Frame::Data {
            offset,
            epoch,
            epoch_start,
            bytes,
        } => {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&epoch_start.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Frame::Ack { offset } => out.extend_from_slice(&offset.to_be_bytes()),
        Frame::Heartbeat { max_offset } => out.extend_from_slice(&max_offset.to_be_bytes()),
        Frame::Refuse { code, reason } => {
            assert!(reason.len() <= MAX_REASON_LEN, "refuse reason too long");
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }
    let body_len = u32::try_from(out.len() - start - HEADER_LEN).expect("frame body over 4 GiB");
    let h = header(frame.kind(), body_len);
    let c = crc(&h, &out[start + HEADER_LEN..]);
    out[start..start + HEADER_LEN].copy_from_slice(&h);
    out[start + 12..start + 16].copy_from_slice(&c.to_be_bytes());
}

/// The header and `Data` prefix to write before `bytes`, so that the bytes are sent straight
/// from the log without a copy.
pub fn data_header(offset: u64, epoch: u32, epoch_start: u64, bytes: &[u8]) -> [u8; HEADER_LEN + DATA_PREFIX_LEN] {
    let mut out = [0u8; HEADER_LEN + DATA_PREFIX_LEN];
    let body_len = (DATA_PREFIX_LEN + bytes.len()) as u32;
    out[..HEADER_LEN].copy_from_slice(&header(KIND_DATA, body_len));
    out[16..24].copy_from_slice(&offset.to_be_bytes());
    out[24..28].copy_from_slice(&epoch.to_be_bytes());
    out[28..36].copy_from_slice(&epoch_start.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[4..12]);
    h.update(&out[HEADER_LEN..]);
    h.update(bytes);
    out[12..16].copy_from_slice(&h.finalize().to_be_bytes());
    out
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

/// Checks a header: the body length it declares.
fn check_header(h: &[u8], max_body: u32) -> Result<u32, ProtocolError> {
    let magic = be_u32(h, 0);
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic { got: magic });
    }
    if h[5] != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion { got: h[5] });
    }
    if !(KIND_HELLO..=KIND_REFUSE).contains(&h[4]) {
        return Err(ProtocolError::UnknownKind { got: h[4] });
    }
    if h[6] != 0 || h[7] != 0 {
        return Err(ProtocolError::Malformed {
            kind: h[4],
            reason: "reserved bytes are not zero",
        });
    }
    let len = be_u32(h, 8);
    if len > max_body {
        return Err(ProtocolError::TooLarge { len, max: max_body });
    }
    Ok(len)
}

/// Parses a body whose header (and CRC) checked out.
fn parse(kind: u8, body: &[u8]) -> Result<Frame<'_>, ProtocolError> {
    let malformed = |reason| ProtocolError::Malformed { kind, reason };
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(malformed("wrong body length"))
        }
    };
    Ok(match kind {
        KIND_HELLO => {
            exact(20)?;
            Frame::Hello {
                segment_size: be_u64(body, 0),
                max_offset: be_u64(body, 8),
                last_epoch: be_u32(body, 16),
            }
        }
        KIND_WELCOME => {
            if body.len() < 28 {
                return Err(malformed("wrong body length"));
            }
            let count = be_u32(body, 24) as usize;
            // Checked before anything is allocated for the entries.
            if (body.len() - 28) / 12 != count || !(body.len() - 28).is_multiple_of(12) {
                return Err(malformed("epoch count does not match the body length"));
            }
            let epochs = (0..count)
                .map(|i| EpochEntry {
                    epoch: be_u32(body, 28 + 12 * i),
                    start_offset: be_u64(body, 32 + 12 * i),
                })
                .collect();
            Frame::Welcome {
                segment_size: be_u64(body, 0),
                max_offset: be_u64(body, 8),
                min_offset: be_u64(body, 16),
                epochs,
            }
        }
        KIND_DATA => {
            if body.len() <= DATA_PREFIX_LEN {
                return Err(malformed("data frame without bytes"));
            }
            Frame::Data {
                offset: be_u64(body, 0),
                epoch: be_u32(body, 8),
                epoch_start: be_u64(body, 12),
                bytes: &body[DATA_PREFIX_LEN..],
            }
        }
        KIND_ACK => {
            exact(8)?;
            Frame::Ack {
                offset: be_u64(body, 0),
            }
        }
        KIND_HEARTBEAT => {
            exact(8)?;
            Frame::Heartbeat {
                max_offset: be_u64(body, 0),
            }
        }
        KIND_REFUSE => {
            if body.len() < 2 || body.len() - 2 > MAX_REASON_LEN {
                return Err(malformed("wrong body length"));
            }
            let reason = std::str::from_utf8(&body[2..]).map_err(|_| malformed("reason is not UTF-8"))?;
            Frame::Refuse {
                code: u16::from_be_bytes([body[0], body[1]]),
                reason,
            }
        }
        other => return Err(ProtocolError::UnknownKind { got: other }),
    })
}

/// Checks the CRC of a whole frame (`frame` = header + body) and parses it.
fn finish(frame: &[u8]) -> Result<Frame<'_>, ProtocolError> {
    let (h, body) = frame.split_at(HEADER_LEN);
    let expected = crc(h, body);
    let got = be_u32(h, 12);
    if expected != got {
        return Err(ProtocolError::BadCrc { expected, got });
    }
    parse(h[4], body)
}

/// Decodes one frame from the start of `buf`: `Ok(None)` if `buf` holds less than a whole
/// frame (a header that is already bad fails at once), else the frame and the bytes it used.
pub fn decode(buf: &[u8], max_body: u32) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = check_header(&buf[..HEADER_LEN], max_body)? as usize;
    let Some(frame) = buf.get(..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((finish(frame)?, HEADER_LEN + len)))
}

/// Reads frames from a stream with one reusable buffer, never larger than a header plus the
/// largest body accepted.
///
/// A read timeout of the stream (`WouldBlock` or `TimedOut`) is returned as
/// [`ProtocolError::Io`] without losing what was read of a frame: the next call goes on with it.
pub struct FrameReader<R: Read> {
    inner: R,
    max_body: u32,
    buf: Vec<u8>,
    /// Bytes of the current frame read so far.
    have: usize,
}

impl<R: Read> FrameReader<R> {
    /// A reader accepting bodies of at most `max_body` bytes.
    pub fn new(inner: R, max_body: u32) -> Self {
        FrameReader {
            inner,
            max_body,
            buf: vec![0u8; HEADER_LEN],
            have: 0,
        }
    }

    /// Reads into `buf[have..want]`; `Ok(false)` at end of stream before any byte of a frame.
    fn fill(&mut self, want: usize) -> Result<bool, ProtocolError> {
        while self.have < want {
            match self.inner.read(&mut self.buf[self.have..want]) {
                Ok(0) if self.have == 0 => return Ok(false),
                Ok(0) => {
                    return Err(ProtocolError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended inside a frame",
                    )));
                }
                Ok(n) => self.have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProtocolError::Io(e)),
            }
        }
        Ok(true)
    }

    /// The next frame; `Ok(None)` at a clean end of stream (at a frame boundary).
    pub fn read_frame(&mut self) -> Result<Option<Frame<'_>>, ProtocolError> {
        if self.have < HEADER_LEN && !self.fill(HEADER_LEN)? {
            return Ok(None);
        }
        let len = check_header(&self.buf[..HEADER_LEN], self.max_body)? as usize;
        let total = HEADER_LEN + len;
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        self.fill(total)?;
        self.have = 0;
        finish(&self.buf[..total]).map(Some)
    }

    /// The stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream, mutably (reading from it directly desynchronises the reader).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Frame<'static>> {
        vec![
            Frame::Hello {
                segment_size: 1 << 30,
                max_offset: 12345,
                last_epoch: 7,
            },
            Frame::Welcome {
                segment_size: 4096,
                max_offset: 99,
                min_offset: 0,
                epochs: vec![
                    EpochEntry {
                        epoch: 1,
                        start_offset: 0,
                    },
                    EpochEntry {
                        epoch: 3,
                        start_offset: 77,
                    },
                ],
            },
            Frame::Welcome {
                segment_size: 4096,
                max_offset: 0,
                min_offset: 0,
                epochs: vec![],
            },
            Frame::Data {
                offset: 4096,
                epoch: 2,
                epoch_start: 100,
                bytes: b"records",
            },
            Frame::Ack { offset: u64::MAX },
            Frame::Heartbeat { max_offset: 5 },
            Frame::Refuse {
                code: 3,
                reason: "diverged: épsilon",
            },
        ]
    }

    fn encoded(f: &Frame<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(f, &mut out);
        out
    }

    #[test]
    fn every_kind_round_trips() {
        for f in samples() {
            let bytes = encoded(&f);
            let (back, used) = decode(&bytes, 1 << 20).unwrap().unwrap();
            assert_eq!(back, f);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn data_header_matches_encode() {
        let bytes = b"some commit-log bytes";
        let mut zero_copy = data_header(9, 4, 2, bytes).to_vec();
        zero_copy.extend_from_slice(bytes);
        let f = Frame::Data {
            offset: 9,
            epoch: 4,
            epoch_start: 2,
            bytes,
        };
        assert_eq!(zero_copy, encoded(&f));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for f in samples() {
            let bytes = encoded(&f);
            for n in 0..bytes.len() {
                assert!(
                    decode(&bytes[..n], 1 << 20).unwrap().is_none(),
                    "{} prefix {n}",
                    f.name()
                );
            }
        }
    }

    #[test]
    fn bad_headers_fail_from_the_header_alone() {
        let good = encoded(&Frame::Ack { offset: 1 });
        let with = |at: usize, v: u8| {
            let mut b = good[..HEADER_LEN].to_vec();
            b[at] = v;
            b
        };
        assert!(matches!(decode(&with(0, 0), 64), Err(ProtocolError::BadMagic { .. })));
        assert!(matches!(
            decode(&with(5, 9), 64),
            Err(ProtocolError::UnsupportedVersion { got: 9 })
        ));
        assert!(matches!(
            decode(&with(4, 0), 64),
            Err(ProtocolError::UnknownKind { got: 0 })
        ));
        assert!(matches!(
            decode(&with(4, 200), 64),
            Err(ProtocolError::UnknownKind { got: 200 })
        ));
        assert!(matches!(decode(&with(7, 1), 64), Err(ProtocolError::Malformed { .. })));
        // Too large: refused before the body arrives.
        assert!(matches!(
            decode(&good[..HEADER_LEN], 7),
            Err(ProtocolError::TooLarge { len: 8, max: 7 })
        ));
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        for f in samples() {
            let bytes = encoded(&f);
            for at in (4..bytes.len()).filter(|&i| !(8..12).contains(&i) && i != 4 && i != 5 && i != 6 && i != 7) {
                let mut b = bytes.clone();
                b[at] ^= 0x10;
                assert!(
                    matches!(decode(&b, 1 << 20), Err(ProtocolError::BadCrc { .. })),
                    "{} byte {at}",
                    f.name()
                );
            }
        }
    }

    /// A frame of `kind` with `body`, correctly checksummed.
    fn raw(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut h = header(kind, body.len() as u32).to_vec();
        let c = crc(&h, body);
        h[12..16].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_malformed() {
        let cases: Vec<(u8, Vec<u8>)> = vec![
            (KIND_HELLO, vec![0; 19]),
            (KIND_HELLO, vec![0; 21]),
            (KIND_WELCOME, vec![0; 27]),
            (KIND_WELCOME, {
                let mut b = vec![0u8; 28 + 12];
                b[24..28].copy_from_slice(&2u32.to_be_bytes());
                b
            }),
            (KIND_WELCOME, {
                let mut b = vec![0u8; 28];
                b[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
                b
            }),
            (KIND_DATA, vec![0; DATA_PREFIX_LEN]),
            (KIND_ACK, vec![0; 7]),
            (KIND_HEARTBEAT, vec![0; 9]),
            (KIND_REFUSE, vec![0]),
            (KIND_REFUSE, vec![0, 1, 0xFF, 0xFE]),
            (KIND_REFUSE, vec![b'a'; MAX_REASON_LEN + 3]),
        ];
        for (kind, body) in cases {
            let f = raw(kind, &body);
            assert!(
                matches!(decode(&f, 1 << 20), Err(ProtocolError::Malformed { .. })),
                "kind {kind}, {} bytes",
                body.len()
            );
        }
    }

    /// Hands out its bytes in chunks, with a timeout between every two.
    struct Stuttering {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
        timeout_next: bool,
    }

    impl Read for Stuttering {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let timeout = self.timeout_next;
            self.timeout_next = !timeout;
            if timeout {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "timeout"));
            }
            let n = self.chunk.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn the_reader_survives_timeouts_inside_frames() {
        let mut stream = Vec::new();
        for f in samples() {
            encode(&f, &mut stream);
        }
        for chunk in [1, 3, 7, 16, 1000] {
            let mut r = FrameReader::new(
                Stuttering {
                    data: stream.clone(),
                    at: 0,
                    chunk,
                    timeout_next: true,
                },
                1 << 20,
            );
            let mut got = Vec::new();
            loop {
                match r.read_frame() {
                    Ok(Some(f)) => got.push(encoded(&f)),
                    Ok(None) => break,
                    Err(ProtocolError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("chunk {chunk}: {e}"),
                }
            }
            let want: Vec<Vec<u8>> = samples().iter().map(encoded).collect();
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    #[test]
    fn the_reader_reports_a_cut_frame_and_a_large_one() {
        let bytes = encoded(&Frame::Ack { offset: 3 });
        let mut r = FrameReader::new(&bytes[..bytes.len() - 1], 64);
        assert!(matches!(r.read_frame(), Err(ProtocolError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        let mut r = FrameReader::new(&bytes[..], 4);
        assert!(matches!(r.read_frame(), Err(ProtocolError::TooLarge { .. })));
        let mut r = FrameReader::new(&[][..], 4);
        assert!(r.read_frame().unwrap().is_none());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 0u32..300) {
            let _ = decode(&bytes, max);
            let mut r = FrameReader::new(&bytes[..], max);
            for _ in 0..20 {
                if !matches!(r.read_frame(), Ok(Some(_))) {
                    break;
                }
            }
        }

        #[test]
        fn data_round_trips(offset in any::<u64>(), epoch in any::<u32>(), start in any::<u64>(),
                            bytes in proptest::collection::vec(any::<u8>(), 1..300)) {
            let f = Frame::Data { offset, epoch, epoch_start: start, bytes: &bytes };
            let e = encoded(&f);
            let (back, used) = decode(&e, 1 << 20).unwrap().unwrap();
            prop_assert_eq!(back, f);
            prop_assert_eq!(used, e.len());
        }
    }
}
