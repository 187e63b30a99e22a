//! The optional config file (TOML) with defaults for the CLI's options, and its parser.
//!
//! The file is untrusted input from disk: it is read up to [`MAX_CONFIG_BYTES`] (a longer file
//! is refused), must be UTF-8, may only hold the keys of [`FileConfig`] with their types and
//! ranges, and every refusal names the file and the line. Nothing here panics on any input
//! (fuzz target `config_file`, which includes this file as it is).
//!
//! Self-contained on purpose (only `serde`, `toml` and `thiserror`): it must not use anything
//! else of the CLI. Where the file is and how its values rank against flags and the environment
//! is decided in `config.rs` and `args.rs`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The longest URL, app id or relay hint accepted in the file.
const MAX_VALUE_LEN: usize = 2048;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// It could not be read.
    #[error("cannot read config file {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// It is larger than [`MAX_CONFIG_BYTES`].
    #[error("config file {} is larger than the {limit}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A key, a type, a value or the TOML itself is wrong.
    #[error("config file {}, line {line}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The keys a config file may set (all optional), named like the command-line flags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// `relay-url`: the mailbox server.
    pub relay_url: Option<String>,
    /// `transit-helper`: the transit relay, `tcp:HOST:PORT`.
    pub transit_helper: Option<String>,
    /// `appid`.
    pub appid: Option<String>,
    /// `code-length`: words of an allocated code, 1 to 64.
    pub code_length: Option<u16>,
    /// `qr`: show the QR code of the send code.
    pub qr: Option<bool>,
    /// `hide-progress`: no progress bar.
    pub hide_progress: Option<bool>,
    /// `accept-file`: accept file offers without asking.
    pub accept_file: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    relay_url: Option<Spanned<String>>,
    transit_helper: Option<Spanned<String>>,
    appid: Option<Spanned<String>>,
    code_length: Option<Spanned<i64>>,
    qr: Option<bool>,
    hide_progress: Option<bool>,
    accept_file: Option<bool>,
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Read and parse the file at `path` (at most [`MAX_CONFIG_BYTES`]).
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    use std::io::Read;
    let read_err = |e: std::io::Error| ConfigError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    parse(&bytes, path)
}

/// Parse config file contents; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<FileConfig, ConfigError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let invalid = |line: usize, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = line_of(
            &String::from_utf8_lossy(&bytes[..e.valid_up_to()]),
            e.valid_up_to(),
        );
        invalid(line, "the file is not UTF-8 text".to_owned())
    })?;
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        invalid(line, e.message().trim().to_owned())
    })?;
    let string = |v: Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let line = line_of(text, v.span().start);
        let s = v.into_inner();
        if s.is_empty() {
            return Err(invalid(line, format!("{key} must not be empty")));
        }
        if s.len() > MAX_VALUE_LEN || s.chars().any(char::is_control) {
            return Err(invalid(
                line,
                format!("{key} must be one line of at most {MAX_VALUE_LEN} bytes"),
            ));
        }
        Ok(Some(s))
    };
    let code_length = match raw.code_length {
        None => None,
        Some(v) => {
            let line = line_of(text, v.span().start);
            match u16::try_from(*v.get_ref()) {
                Ok(n @ 1..=64) => Some(n),
                _ => return Err(invalid(line, "code-length must be between 1 and 64".to_owned())),
            }
        }
    };
    Ok(FileConfig {
        relay_url: string(raw.relay_url, "relay-url")?,
        transit_helper: string(raw.transit_helper, "transit-helper")?,
        appid: string(raw.appid, "appid")?,
        code_length,
        qr: raw.qr,
        hide_progress: raw.hide_progress,
        accept_file: raw.accept_file,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn p(text: &str) -> Result<FileConfig, ConfigError> {
        parse(text.as_bytes(), Path::new("/cfg/config.toml"))
    }

    fn line(e: ConfigError) -> (usize, String) {
        match e {
            ConfigError::Invalid { line, message, .. } => (line, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_key() {
        let c = p(
            "relay-url = \"ws://m:4000/v1\"\ntransit-helper = \"tcp:t:4001\"\nappid = \"a/b\"\n\
                   code-length = 3\nqr = false\nhide-progress = true\naccept-file = true\n",
        )
        .unwrap();
        assert_eq!(
            c,
            FileConfig {
                relay_url: Some("ws://m:4000/v1".into()),
                transit_helper: Some("tcp:t:4001".into()),
                appid: Some("a/b".into()),
                code_length: Some(3),
                qr: Some(false),
                hide_progress: Some(true),
                accept_file: Some(true),
            }
        );
        assert_eq!(p("# nothing\n").unwrap(), FileConfig::default());
    }

    #[test]
    fn errors_name_the_line() {
        let (l, m) = line(p("qr = true\n\nrelay_url = \"x\"\n").unwrap_err());
        assert_eq!(l, 3);
        assert!(m.contains("relay_url"), "{m}");
        let (l, m) = line(p("qr = true\ncode-length = \"three\"\n").unwrap_err());
        assert_eq!(l, 2);
        assert!(m.contains("integer") || m.contains("i64"), "{m}");
        let (l, _) = line(p("\n\ncode-length = 99\n").unwrap_err());
        assert_eq!(l, 3);
        let (l, _) = line(p("qr = \"yes\"\n").unwrap_err());
        assert_eq!(l, 1);
        let (l, _) = line(p("a = [\n").unwrap_err());
        assert!(l >= 1);
        let (l, _) = line(p("appid = \"\"\n").unwrap_err());
        assert_eq!(l, 1);
        let (l, _) = line(parse(b"qr = true\n\xff\n", Path::new("c")).unwrap_err());
        assert_eq!(l, 2);
        let e = p("appid = \"x\"\nappid = \"y\"\n").unwrap_err();
        assert_eq!(line(e).0, 2);
    }

    #[test]
    fn messages_name_the_file() {
        let e = p("bogus = 1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config file /cfg/config.toml, line 1: "),
            "{e}"
        );
    }

    #[test]
    fn size_is_bounded() {
        let big = vec![b'#'; MAX_CONFIG_BYTES + 1];
        assert!(matches!(
            parse(&big, Path::new("c")),
            Err(ConfigError::TooLarge { .. })
        ));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.toml");
        std::fs::write(&f, &big).unwrap();
        assert!(matches!(load(&f), Err(ConfigError::TooLarge { .. })));
        assert!(matches!(
            load(&d.path().join("missing.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
