//! The file-transfer protocol v1 application messages (docs/protocol.md §5.1): `transit`, `offer`
//! (message / file / directory), `answer`, `error`, and the final transit ack record.
//!
//! Parsing is tolerant of unknown keys and bounded in size; encoding reproduces Python's
//! `json.dumps` spacing so our messages have the same wire sizes. No I/O, no path handling (the
//! safe-receive rules live in `wormhole::transfer`).

mod pyjson;

use serde_json::{Value, json};

use crate::transit::TransitMsg;

pub use pyjson::to_python_json;

/// Largest application message we parse (bytes of JSON).
pub const MAX_APP_MESSAGE: usize = 16 << 20;
/// Longest file or directory name accepted in an offer (bytes).
pub const MAX_NAME: usize = 4096;
/// Largest final-ack record we accept (bytes).
pub const MAX_ACK: usize = 4096;
/// The directory mode string every implementation sends.
pub const ZIP_MODE: &str = "zipfile/deflated";

/// Errors parsing application messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferMsgError {
    /// The message is over its limit ([`MAX_APP_MESSAGE`], or [`MAX_ACK`] for the final ack);
    /// the peer is misbehaving.
    #[error("a peer message of {size} bytes was larger than our limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// Our limit.
        limit: usize,
    },
    /// A file or directory name in an offer is longer than [`MAX_NAME`] bytes.
    #[error("the {field} in the peer's offer is {len} bytes long, over our limit of {limit} bytes")]
    NameTooLong {
        /// Which name (`filename`, `dirname`).
        field: String,
        /// Its length.
        len: usize,
        /// Our limit.
        limit: usize,
    },
    /// Not a JSON object; the peer speaks some other protocol.
    #[error("peer message is not a JSON object: {0}")]
    NotJson(String),
    /// A known message with missing or ill-typed fields.
    #[error("malformed {0} message from peer")]
    Malformed(&'static str),
}

/// A directory offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryOffer {
    /// Mode string (`zipfile/deflated`).
    pub mode: String,
    /// The sent directory's name (untrusted).
    pub dirname: String,
    /// Bytes of zip on the wire.
    pub zipsize: u64,
    /// Total uncompressed bytes of the regular files.
    pub numbytes: u64,
    /// Number of regular files.
    pub numfiles: u64,
}

/// What the sender offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// A text message.
    Message(String),
    /// One file.
    File {
        /// Offered name (untrusted).
        filename: String,
        /// Bytes that will follow over transit.
        filesize: u64,
    },
    /// A directory as a zip.
    Directory(DirectoryOffer),
    /// An offer type we do not know (its key).
    Unknown(String),
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `message_ack` with its value (`ok`).
    MessageAck(String),
    /// `file_ack` with its value (`ok`).
    FileAck(String),
    /// Something else.
    Unknown,
}

/// One application message.
#[derive(Debug, Clone, PartialEq)]
pub enum AppMsg {
    /// Transit hints and abilities.
    Transit(TransitMsg),
    /// An offer.
    Offer(Offer),
    /// An answer.
    Answer(Answer),
    /// The peer gave up, with its reason.
    Error(String),
    /// A message with none of the known keys (ignored by receivers).
    Unknown,
}

fn u64_field(
    o: &serde_json::Map<String, Value>,
    k: &str,
    what: &'static str,
) -> Result<u64, TransferMsgError> {
    o.get(k)
        .and_then(Value::as_u64)
        .ok_or(TransferMsgError::Malformed(what))
}

fn name_field(
    o: &serde_json::Map<String, Value>,
    k: &str,
    what: &'static str,
) -> Result<String, TransferMsgError> {
    let s = o
        .get(k)
        .and_then(Value::as_str)
        .ok_or(TransferMsgError::Malformed(what))?;
    if s.len() > MAX_NAME {
        return Err(TransferMsgError::NameTooLong {
            field: k.to_owned(),
            len: s.len(),
            limit: MAX_NAME,
        });
    }
    Ok(s.to_owned())
}

fn parse_offer(v: &Value) -> Result<Offer, TransferMsgError> {
    let o = v.as_object().ok_or(TransferMsgError::Malformed("offer"))?;
    if let Some(m) = o.get("message") {
        let m = m.as_str().ok_or(TransferMsgError::Malformed("offer.message"))?;
        return Ok(Offer::Message(m.to_owned()));
    }
    if let Some(f) = o.get("file") {
        let f = f.as_object().ok_or(TransferMsgError::Malformed("offer.file"))?;
        return Ok(Offer::File {
            filename: name_field(f, "filename", "offer.file")?,
            filesize: u64_field(f, "filesize", "offer.file")?,
        });
    }
    if let Some(d) = o.get("directory") {
        let d = d
            .as_object()
            .ok_or(TransferMsgError::Malformed("offer.directory"))?;
        return Ok(Offer::Directory(DirectoryOffer {
            mode: name_field(d, "mode", "offer.directory")?,
            dirname: name_field(d, "dirname", "offer.directory")?,
            zipsize: u64_field(d, "zipsize", "offer.directory")?,
            numbytes: u64_field(d, "numbytes", "offer.directory")?,
            numfiles: u64_field(d, "numfiles", "offer.directory")?,
        }));
    }
    Ok(Offer::Unknown(
        o.keys()
            .next()
            .map(|k| k.chars().take(64).collect())
            .unwrap_or_default(),
    ))
}

impl AppMsg {
    /// Parse a decrypted application message.
    pub fn parse(bytes: &[u8]) -> Result<AppMsg, TransferMsgError> {
        if bytes.len() > MAX_APP_MESSAGE {
            return Err(TransferMsgError::TooLarge {
                size: bytes.len(),
                limit: MAX_APP_MESSAGE,
            });
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| TransferMsgError::NotJson(e.to_string()))?;
        let o = v
            .as_object()
            .ok_or_else(|| TransferMsgError::NotJson("not an object".into()))?;
        if let Some(e) = o.get("error") {
            let s = match e {
                Value::String(s) => s.chars().take(1000).collect(),
                other => other.to_string().chars().take(1000).collect(),
            };
            return Ok(AppMsg::Error(s));
        }
        if let Some(t) = o.get("transit") {
            return TransitMsg::from_value(t)
                .map(AppMsg::Transit)
                .ok_or(TransferMsgError::Malformed("transit"));
        }
        if let Some(off) = o.get("offer") {
            return parse_offer(off).map(AppMsg::Offer);
        }
        if let Some(a) = o.get("answer") {
            let a = a.as_object().ok_or(TransferMsgError::Malformed("answer"))?;
            let s = |k: &str| a.get(k).map(|v| v.as_str().unwrap_or("").to_owned());
            return Ok(AppMsg::Answer(if let Some(v) = s("message_ack") {
                Answer::MessageAck(v)
            } else if let Some(v) = s("file_ack") {
                Answer::FileAck(v)
            } else {
                Answer::Unknown
            }));
        }
        Ok(AppMsg::Unknown)
    }

    /// Encode as Python would (`json.dumps`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let v = match self {
            AppMsg::Transit(t) => json!({"transit": t.to_value()}),
            AppMsg::Offer(Offer::Message(m)) => json!({"offer": {"message": m}}),
            AppMsg::Offer(Offer::File { filename, filesize }) => {
                json!({"offer": {"file": {"filename": filename, "filesize": filesize}}})
            }
            AppMsg::Offer(Offer::Directory(d)) => json!({"offer": {"directory": {
                "mode": d.mode, "dirname": d.dirname, "zipsize": d.zipsize,
                "numbytes": d.numbytes, "numfiles": d.numfiles}}}),
            AppMsg::Offer(Offer::Unknown(k)) => json!({"offer": {k.as_str(): {}}}),
            AppMsg::Answer(Answer::MessageAck(v)) => json!({"answer": {"message_ack": v}}),
            AppMsg::Answer(Answer::FileAck(v)) => json!({"answer": {"file_ack": v}}),
            AppMsg::Answer(Answer::Unknown) => json!({"answer": {}}),
            AppMsg::Error(e) => json!({"error": e}),
            AppMsg::Unknown => json!({}),
        };
        to_python_json(&v)
    }
}

/// The final ack the receiver sends as the last transit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalAck {
    /// `ok` on success.
    pub ack: String,
    /// Hex SHA-256 of all bytes received, when present.
    pub sha256: Option<String>,
}

impl FinalAck {
    /// A successful ack for `sha256` (32 bytes).
    pub fn ok(sha256: &[u8]) -> Self {
        FinalAck {
            ack: "ok".into(),
            sha256: Some(hex::encode(sha256)),
        }
    }

    /// Encode: `{"ack": "ok", "sha256": "…"}` (91 bytes for a real hash).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("ack".into(), Value::String(self.ack.clone()));
        if let Some(h) = &self.sha256 {
            m.insert("sha256".into(), Value::String(h.clone()));
        }
        to_python_json(&Value::Object(m))
    }

    /// Parse a received ack record (at most [`MAX_ACK`] bytes).
    pub fn parse(bytes: &[u8]) -> Result<FinalAck, TransferMsgError> {
        if bytes.len() > MAX_ACK {
            return Err(TransferMsgError::TooLarge {
                size: bytes.len(),
                limit: MAX_ACK,
            });
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| TransferMsgError::NotJson(e.to_string()))?;
        let ack = v
            .get("ack")
            .and_then(Value::as_str)
            .ok_or(TransferMsgError::Malformed("ack"))?;
        let sha256 = match v.get("sha256") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() == 64 => Some(s.to_ascii_lowercase()),
            Some(_) => return Err(TransferMsgError::Malformed("ack")),
        };
        Ok(FinalAck {
            ack: ack.chars().take(100).collect(),
            sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_wire_sizes() {
        // docs/protocol.md §7.2 live sizes: 37-byte offer, 33-byte message_ack, 30-byte file_ack.
        let m = AppMsg::Offer(Offer::Message("hello world".into())).to_bytes();
        assert_eq!(m, br#"{"offer": {"message": "hello world"}}"#);
        assert_eq!(
            AppMsg::Answer(Answer::MessageAck("ok".into())).to_bytes().len(),
            33
        );
        assert_eq!(
            AppMsg::Answer(Answer::FileAck("ok".into())).to_bytes(),
            br#"{"answer": {"file_ack": "ok"}}"#
        );
        let ack = FinalAck::ok(&[0xab; 32]).to_bytes();
        assert_eq!(ack.len(), 91);
        assert_eq!(FinalAck::parse(&ack).unwrap(), FinalAck::ok(&[0xab; 32]));
    }

    #[test]
    fn parse_offers_tolerant() {
        let f = AppMsg::parse(br#"{"offer":{"file":{"filename":"a.txt","filesize":5,"extra":1}},"x":2}"#)
            .unwrap();
        assert_eq!(
            f,
            AppMsg::Offer(Offer::File {
                filename: "a.txt".into(),
                filesize: 5
            })
        );
        let d = AppMsg::parse(
            br#"{"offer": {"directory": {"mode": "zipfile/deflated", "dirname": "d", "zipsize": 10, "numbytes": 3, "numfiles": 1}}}"#,
        )
        .unwrap();
        let AppMsg::Offer(Offer::Directory(d)) = d else {
            panic!()
        };
        assert_eq!((d.zipsize, d.numbytes, d.numfiles), (10, 3, 1));
        let round = AppMsg::Offer(Offer::Directory(d.clone()));
        assert_eq!(AppMsg::parse(&round.to_bytes()).unwrap(), round);
        assert_eq!(
            AppMsg::parse(br#"{"offer":{"tarball":{}}}"#).unwrap(),
            AppMsg::Offer(Offer::Unknown("tarball".into()))
        );
        assert_eq!(
            AppMsg::parse(br#"{"error":"transfer rejected"}"#).unwrap(),
            AppMsg::Error("transfer rejected".into())
        );
        assert_eq!(AppMsg::parse(br#"{"whatever":1}"#).unwrap(), AppMsg::Unknown);
        assert!(matches!(
            AppMsg::parse(br#"{"transit":{"hints-v1":[]}}"#).unwrap(),
            AppMsg::Transit(_)
        ));
    }

    #[test]
    fn parse_rejects() {
        assert!(AppMsg::parse(b"[1]").is_err());
        assert!(AppMsg::parse(b"not json").is_err());
        assert!(AppMsg::parse(br#"{"offer":{"file":{"filename":"a","filesize":-1}}}"#).is_err());
        assert!(AppMsg::parse(br#"{"offer":{"file":{"filename":"a"}}}"#).is_err());
        let long = format!(
            r#"{{"offer":{{"file":{{"filename":"{}","filesize":1}}}}}}"#,
            "a".repeat(5000)
        );
        let e = AppMsg::parse(long.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, TransferMsgError::NameTooLong { field, len: 5000, limit: MAX_NAME } if field == "filename")
        );
        assert!(e.to_string().contains("over our limit of 4096 bytes"), "{e}");
        assert!(FinalAck::parse(br#"{"ack":"ok","sha256":"short"}"#).is_err());
        assert_eq!(FinalAck::parse(br#"{"ack":"ok"}"#).unwrap().sha256, None);
        let e = FinalAck::parse(&vec![b' '; 5000]).unwrap_err();
        assert_eq!(
            e,
            TransferMsgError::TooLarge {
                size: 5000,
                limit: MAX_ACK
            }
        );
        assert!(
            e.to_string().contains("larger than our limit of 4096 bytes"),
            "{e}"
        );
    }
}
