//! Wormhole codes: `<nameplate>-<password>` (PROTOCOL.md §2.9).
//!
//! INTERFACE STUB: signatures fixed; bodies being written.

/// A code was malformed (a space in it, or a nameplate that is not all digits).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("{0}")]
pub struct KeyFormatError(pub String);

/// A parsed wormhole code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The whole code as typed; this is the SPAKE2 password.
    pub full: String,
    /// The part before the first `-`: ASCII digits.
    pub nameplate: String,
    /// Everything after the first `-` (may be empty, as in `0-`).
    pub words: String,
}

impl Code {
    /// Parse and validate like Python's `set_code`.
    pub fn parse(_code: &str) -> Result<Code, KeyFormatError> {
        unimplemented!("stub")
    }
}

/// Validate a nameplate string (ASCII digits, 1..=40 chars).
pub fn validate_nameplate(_nameplate: &str) -> Result<(), KeyFormatError> {
    unimplemented!("stub")
}
