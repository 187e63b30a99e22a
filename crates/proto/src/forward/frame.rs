//! One framed message of fowl's subchannels: a 2-byte big-endian length, then that many bytes of
//! msgpack. fowl writes each message as one Dilation record and expects the same of its peer
//! (it asserts that a record holds exactly one message), so decoding works on a whole record.
//!
//! Owns: the length prefix and the msgpack body's encoding. Must not: know what the messages mean.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::MAX_MESSAGE;

/// Why a framed message could not be decoded (or encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer than the two bytes of the length prefix.
    #[error("the peer sent a message of {0} bytes, shorter than its 2-byte length prefix")]
    Short(usize),
    /// The prefix and the record's length disagree.
    #[error("the peer's message declares {declared} bytes but its record holds {actual} after the prefix")]
    Length {
        /// What the prefix says.
        declared: usize,
        /// What followed it.
        actual: usize,
    },
    /// The body is not msgpack of the expected shape.
    #[error("the peer sent a malformed message: {0}")]
    Malformed(String),
    /// A message of ours that does not fit the 16-bit length.
    #[error("a message of {0} bytes is over the limit of {MAX_MESSAGE} bytes")]
    TooLarge(usize),
}

/// `value` as msgpack (string keys, like Python's `msgpack.packb` of a dict) with its prefix.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = rmp_serde::to_vec_named(value).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u16::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The message a whole record holds: the prefix must match the record's length exactly.
pub fn decode<T: DeserializeOwned>(record: &[u8]) -> Result<T, FrameError> {
    let body = body(record)?;
    rmp_serde::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// The msgpack body of a whole record, after checking its prefix.
pub fn body(record: &[u8]) -> Result<&[u8], FrameError> {
    let [a, b, rest @ ..] = record else {
        return Err(FrameError::Short(record.len()));
    };
    let declared = usize::from(u16::from_be_bytes([*a, *b]));
    if declared != rest.len() {
        return Err(FrameError::Length {
            declared,
            actual: rest.len(),
        });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn prefix_and_body() {
        let mut m = BTreeMap::new();
        m.insert("connected", true);
        let f = encode(&m).unwrap();
        // {"connected": True} as Python's msgpack.packb writes it.
        assert_eq!(f, b"\x00\x0c\x81\xa9connected\xc3");
        let back: BTreeMap<String, bool> = decode(&f).unwrap();
        assert_eq!(back.get("connected"), Some(&true));
    }

    #[test]
    fn refuses_wrong_lengths() {
        assert_eq!(decode::<bool>(b"\x00"), Err(FrameError::Short(1)));
        assert_eq!(
            decode::<bool>(b"\x00\x02\xc3"),
            Err(FrameError::Length {
                declared: 2,
                actual: 1
            })
        );
        assert_eq!(
            decode::<bool>(b"\x00\x01\xc3\xc3"),
            Err(FrameError::Length {
                declared: 1,
                actual: 2
            })
        );
        assert!(matches!(
            decode::<bool>(b"\x00\x01\xc0"),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_to_encode_over_the_limit() {
        let big = "x".repeat(MAX_MESSAGE);
        assert!(matches!(encode(&big), Err(FrameError::TooLarge(n)) if n > MAX_MESSAGE));
    }
}
