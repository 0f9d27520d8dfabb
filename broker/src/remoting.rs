//! RocketMQ's remoting protocol: one command per frame.
//!
//! A frame is `total length (i32, the bytes after it)`, `serialization type (high byte) and
//! header length (low 3 bytes)`, the header, then the body. The header is JSON (`code`,
//! `language`, `version`, `opaque`, `flag`, `remark`, `extFields`, `serializeTypeCurrentRPC`)
//! or RocketMQ's own binary layout; a response goes back in the serialization of its request.
//! Everything here is parsed from the network: a malformed frame is an error, never a panic.

use std::collections::BTreeMap;
use std::fmt;

/// `flag` bit: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// `flag` bit: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// Languages by their wire number (binary headers) and name (JSON headers).
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];
/// The language this broker names in its own commands.
const OWN_LANGUAGE: u8 = 12;
/// The remoting version this broker names in its own commands (RocketMQ 5's).
pub const OWN_VERSION: i32 = 501;

/// How a command's header is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serialization {
    /// A JSON object.
    Json,
    /// RocketMQ's binary header.
    RocketMq,
}

/// Why bytes from a peer are not a command.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is negative, too small for its own fields, or above the limit.
    #[error("frame length {len} outside 4..={max}")]
    Length {
        /// The length the peer announced.
        len: i64,
        /// The configured maximum.
        max: usize,
    },
    /// The header length does not fit in the frame.
    #[error("header length {header} does not fit a frame of {frame} bytes")]
    HeaderLength {
        /// The announced header length.
        header: usize,
        /// The frame's length.
        frame: usize,
    },
    /// An unknown serialization type.
    #[error("unknown serialization type {0}")]
    Serialization(u8),
    /// The header does not parse.
    #[error("malformed header: {0}")]
    Header(String),
}

/// One request or response.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Request code, or response code in a response.
    pub code: i32,
    /// The sender's language, by wire number.
    pub language: u8,
    /// The sender's protocol version.
    pub version: i32,
    /// Matches a response to its request.
    pub opaque: i32,
    /// `FLAG_RESPONSE`, `FLAG_ONEWAY`.
    pub flag: i32,
    /// A human-readable note (errors).
    pub remark: Option<String>,
    /// The request's or response's named fields (the "custom header"), all strings on the wire.
    pub ext: BTreeMap<String, String>,
    /// The payload.
    pub body: Vec<u8>,
    /// How the header travels.
    pub serialization: Serialization,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("code", &self.code)
            .field("opaque", &self.opaque)
            .field("flag", &self.flag)
            .field("remark", &self.remark)
            .field("ext", &self.ext)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Command {
    /// A request with `code` (used by tests and for the broker's own notifications).
    pub fn request(code: i32, opaque: i32) -> Command {
        Command {
            code,
            language: OWN_LANGUAGE,
            version: OWN_VERSION,
            opaque,
            flag: 0,
            remark: None,
            ext: BTreeMap::new(),
            body: Vec::new(),
            serialization: Serialization::Json,
        }
    }

    /// The response to this request, with `code`, in the request's serialization.
    pub fn response(&self, code: i32) -> Command {
        Command {
            code,
            language: OWN_LANGUAGE,
            version: OWN_VERSION,
            opaque: self.opaque,
            flag: FLAG_RESPONSE,
            remark: None,
            ext: BTreeMap::new(),
            body: Vec::new(),
            serialization: self.serialization,
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether the sender expects no response.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Sets a named field.
    pub fn with(mut self, key: &str, value: impl ToString) -> Command {
        self.ext.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets the remark.
    pub fn with_remark(mut self, remark: impl Into<String>) -> Command {
        self.remark = Some(remark.into());
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Command {
        self.body = body;
        self
    }

    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let header = match self.serialization {
            Serialization::Json => self.json_header(),
            Serialization::RocketMq => self.binary_header(),
        };
        let kind: u32 = match self.serialization {
            Serialization::Json => 0,
            Serialization::RocketMq => 1,
        };
        let total = 4 + header.len() + self.body.len();
        let mut out = Vec::with_capacity(4 + total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&((kind << 24) | (header.len() as u32 & 0x00FF_FFFF)).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }

    fn json_header(&self) -> Vec<u8> {
        let language = LANGUAGES.get(usize::from(self.language)).copied().unwrap_or("OTHER");
        let header = serde_json::json!({
            "code": self.code,
            "language": language,
            "version": self.version,
            "opaque": self.opaque,
            "flag": self.flag,
            "remark": self.remark,
            "extFields": self.ext,
            "serializeTypeCurrentRPC": "JSON",
        });
        serde_json::to_vec(&header).unwrap_or_default()
    }

    fn binary_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&(self.code as i16).to_be_bytes());
        out.push(self.language);
        out.extend_from_slice(&(self.version as i16).to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.as_deref().unwrap_or("").as_bytes();
        out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        out.extend_from_slice(remark);
        let mut fields = Vec::new();
        for (k, v) in &self.ext {
            fields.extend_from_slice(&(k.len() as i16).to_be_bytes());
            fields.extend_from_slice(k.as_bytes());
            fields.extend_from_slice(&(v.len() as i32).to_be_bytes());
            fields.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&(fields.len() as i32).to_be_bytes());
        out.extend_from_slice(&fields);
        out
    }

    /// Decodes one frame's bytes after its length prefix.
    pub fn decode(frame: &[u8]) -> Result<Command, FrameError> {
        if frame.len() < 4 {
            return Err(FrameError::Length {
                len: frame.len() as i64,
                max: usize::MAX,
            });
        }
        let mark = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let header_len = (mark & 0x00FF_FFFF) as usize;
        let rest = &frame[4..];
        if header_len > rest.len() {
            return Err(FrameError::HeaderLength {
                header: header_len,
                frame: frame.len(),
            });
        }
        let (header, body) = rest.split_at(header_len);
        let mut cmd = match (mark >> 24) as u8 {
            0 => decode_json(header)?,
            1 => decode_binary(header)?,
            other => return Err(FrameError::Serialization(other)),
        };
        cmd.body = body.to_vec();
        Ok(cmd)
    }
}

fn decode_json(header: &[u8]) -> Result<Command, FrameError> {
    let bad = |what: &str| FrameError::Header(what.to_string());
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| FrameError::Header(e.to_string()))?;
    let obj = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let int = |key: &str, required: bool| -> Result<i32, FrameError> {
        match obj.get(key) {
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| FrameError::Header(format!("{key} is not a 32-bit integer"))),
            None if required => Err(FrameError::Header(format!("{key} is missing"))),
            None => Ok(0),
        }
    };
    let language = match obj.get("language") {
        Some(serde_json::Value::String(name)) => LANGUAGES.iter().position(|l| l == name).unwrap_or(7) as u8,
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()).unwrap_or(7),
        _ => 7,
    };
    let remark = match obj.get("remark") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut ext = BTreeMap::new();
    match obj.get("extFields") {
        Some(serde_json::Value::Object(fields)) => {
            for (k, v) in fields {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                ext.insert(k.clone(), v);
            }
        }
        Some(serde_json::Value::Null) | None => {}
        Some(_) => return Err(bad("extFields is not an object")),
    }
    Ok(Command {
        code: int("code", true)?,
        language,
        version: int("version", false)?,
        opaque: int("opaque", true)?,
        flag: int("flag", false)?,
        remark,
        ext,
        body: Vec::new(),
        serialization: Serialization::Json,
    })
}

/// Reads RocketMQ's binary header, every length checked against what is there.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.buf.len() {
            return Err(FrameError::Header(format!(
                "binary header: {n} bytes wanted, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, FrameError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn len(&mut self, n: i64) -> Result<usize, FrameError> {
        usize::try_from(n).map_err(|_| FrameError::Header(format!("binary header: negative length {n}")))
    }
    fn string(&mut self, n: usize) -> Result<String, FrameError> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::Header("binary header: a string is not UTF-8".into()))
    }
}

fn decode_binary(header: &[u8]) -> Result<Command, FrameError> {
    let mut r = Reader { buf: header };
    let code = i32::from(r.i16()?);
    let language = r.u8()?;
    let version = i32::from(r.i16()?);
    let opaque = r.i32()?;
    let flag = r.i32()?;
    let remark_len = r.i32()?;
    let remark_len = r.len(i64::from(remark_len))?;
    let remark = if remark_len > 0 {
        Some(r.string(remark_len)?)
    } else {
        None
    };
    let ext_len = r.i32()?;
    let ext_len = r.len(i64::from(ext_len))?;
    let mut fields = Reader { buf: r.take(ext_len)? };
    let mut ext = BTreeMap::new();
    while !fields.buf.is_empty() {
        let k = fields.i16()?;
        let k = fields.len(i64::from(k))?;
        let key = fields.string(k)?;
        let v = fields.i32()?;
        let v = fields.len(i64::from(v))?;
        ext.insert(key, fields.string(v)?);
    }
    Ok(Command {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext,
        body: Vec::new(),
        serialization: Serialization::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(serialization: Serialization) -> Command {
        Command {
            serialization,
            ..Command::request(10, 7)
                .with("topic", "T")
                .with("queueId", 3)
                .with_remark("r")
                .with_body(b"body".to_vec())
        }
    }

    #[test]
    fn both_serializations_round_trip() {
        for s in [Serialization::Json, Serialization::RocketMq] {
            let cmd = sample(s);
            let frame = cmd.encode();
            let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            assert_eq!(Command::decode(&frame[4..]).unwrap(), cmd);
        }
    }

    #[test]
    fn every_truncation_of_a_frame_is_an_error_not_a_panic() {
        for s in [Serialization::Json, Serialization::RocketMq] {
            let frame = sample(s).encode();
            let header_len = (u32::from_be_bytes(frame[4..8].try_into().unwrap()) & 0xFF_FFFF) as usize;
            for cut in 0..4 + header_len {
                assert!(Command::decode(&frame[4..4 + cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn garbage_headers_are_errors() {
        let mut frame = vec![0, 0, 0, 5];
        frame.extend_from_slice(b"{nope");
        assert!(matches!(Command::decode(&frame), Err(FrameError::Header(_))));
        let frame = [9u8, 0, 0, 0];
        assert!(matches!(Command::decode(&frame), Err(FrameError::Serialization(9))));
        let json = br#"{"code":"ten","opaque":1}"#;
        let mut frame = (json.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(json);
        assert!(Command::decode(&frame).is_err());
    }
}
