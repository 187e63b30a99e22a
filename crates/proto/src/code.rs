//! Wormhole codes: `<nameplate>-<password>` (docs/protocol.md §2.9), and the `wormhole-transfer:` URI
//! that carries one (§5.7, in [`uri`]).
//!
//! Owns: the validation Python's `set_code` does (no space anywhere, an all-digit nameplate
//! before the first `-`, any password after it, even an empty one as in `0-`). Must not: apply
//! Rust's stricter zxcvbn rules (they would refuse codes Python and Go peers accept), normalise
//! or trim the text (the whole code, as given, is the SPAKE2 password), or talk to a server.

#[path = "code_uri.rs"]
pub mod uri;

/// The longest nameplate accepted. Servers hand out small numbers; this only bounds garbage.
pub const MAX_NAMEPLATE_LEN: usize = 40;

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
    pub fn parse(code: &str) -> Result<Code, KeyFormatError> {
        if code.contains(' ') {
            return Err(KeyFormatError(format!(
                "the code {code:?} contains a space; codes look like 4-purple-sausages"
            )));
        }
        let Some((nameplate, words)) = code.split_once('-') else {
            // A bare nameplate still gets its own, more specific, message when it is not numeric.
            validate_nameplate(code)?;
            return Err(KeyFormatError(format!(
                "incomplete wormhole code {code:?}: expected <number>-<words>, e.g. 4-purple-sausages"
            )));
        };
        validate_nameplate(nameplate)?;
        Ok(Code {
            full: code.to_owned(),
            nameplate: nameplate.to_owned(),
            words: words.to_owned(),
        })
    }

    /// Build a code from a nameplate and the chosen words (`<nameplate>-<words>`), validating
    /// both like [`Code::parse`].
    pub fn from_parts(nameplate: &str, words: &str) -> Result<Code, KeyFormatError> {
        validate_nameplate(nameplate)?;
        Code::parse(&format!("{nameplate}-{words}"))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for Code {
    type Err = KeyFormatError;

    fn from_str(s: &str) -> Result<Code, KeyFormatError> {
        Code::parse(s)
    }
}

/// Validate a nameplate string (ASCII digits, 1..=40 chars).
pub fn validate_nameplate(nameplate: &str) -> Result<(), KeyFormatError> {
    if nameplate.is_empty() {
        return Err(KeyFormatError(
            "the nameplate (the number before the first '-') is missing".into(),
        ));
    }
    if !nameplate.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KeyFormatError(format!(
            "the nameplate {nameplate:?} must be a number (digits 0-9 only, no spaces)"
        )));
    }
    if nameplate.len() > MAX_NAMEPLATE_LEN {
        return Err(KeyFormatError(format!(
            "the nameplate is {} digits long; at most {MAX_NAMEPLATE_LEN} are allowed",
            nameplate.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_normal_codes() {
        let c = Code::parse("4-purple-sausages").unwrap();
        assert_eq!(c.full, "4-purple-sausages");
        assert_eq!(c.nameplate, "4");
        assert_eq!(c.words, "purple-sausages");
        assert_eq!(c.to_string(), "4-purple-sausages");
        assert_eq!("4-purple-sausages".parse::<Code>().unwrap(), c);
    }

    #[test]
    fn python_edge_cases_are_accepted() {
        // `-0` mode: empty password.
        let c = Code::parse("0-").unwrap();
        assert_eq!((c.nameplate.as_str(), c.words.as_str()), ("0", ""));
        // Split at the first '-' only; the password may hold anything but a space.
        let c = Code::parse("123-a-b--c").unwrap();
        assert_eq!((c.nameplate.as_str(), c.words.as_str()), ("123", "a-b--c"));
        let c = Code::parse("7-Ünïcödé\tx").unwrap();
        assert_eq!(c.words, "Ünïcödé\tx");
        assert_eq!(Code::parse("007-x").unwrap().nameplate, "007");
    }

    #[test]
    fn rejects_bad_codes() {
        for bad in [
            "4-purple sausages",
            " 4-purple",
            "4-purple ",
            "a-purple",
            "-purple",
            "",
            "4",
            "12345",
            "x4-b",
            "٤-arabic-digit",
            "4\n-x",
            "+4-x",
        ] {
            assert!(Code::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = Code::parse("4").unwrap_err();
        assert!(e.0.contains("incomplete wormhole code"), "{e}");
        let e = Code::parse("4 -x").unwrap_err();
        assert!(e.0.contains("space"), "{e}");
        let e = Code::parse("abc").unwrap_err();
        assert!(e.0.contains("must be a number"), "{e}");
        let long = format!("{}-x", "1".repeat(41));
        assert!(Code::parse(&long).is_err());
        assert!(Code::parse(&format!("{}-x", "1".repeat(40))).is_ok());
    }

    #[test]
    fn nameplate_validation() {
        assert!(validate_nameplate("0").is_ok());
        assert!(validate_nameplate("4123").is_ok());
        assert!(validate_nameplate("").is_err());
        assert!(validate_nameplate("4a").is_err());
        assert!(validate_nameplate("4 ").is_err());
        assert!(validate_nameplate("-1").is_err());
    }

    #[test]
    fn from_parts() {
        assert_eq!(
            Code::from_parts("4", "purple-sausages").unwrap(),
            Code::parse("4-purple-sausages").unwrap()
        );
        assert!(Code::from_parts("4-", "x").is_err());
        assert!(Code::from_parts("4", "a b").is_err());
    }
}
