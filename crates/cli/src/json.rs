//! `--json`: the CLI's machine-readable interface. Every event of a run is one JSON object on
//! its own line on stdout (schema version [`SCHEMA_VERSION`], documented in docs/cli-json.md and
//! docs/cli-json.schema.json); nothing else is written to stdout in that mode.
//!
//! This module owns the event types, the mode switch and the writing of lines. It must not
//! decide anything about a transfer: the flows (`send`, `receive`, `files`, `ssh`) call
//! [`emit`] with what the `wormhole` library told them. Any command (including ones added
//! later, such as `forward`) uses the same [`Event`]s and adds variants here.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use wormhole::transfer::ConnectionInfo;
use wormhole::transit::ConnectionKind;

/// The version of the event schema, the `v` of every line. Bumped on any change that is not
/// purely additive (a removed or renamed field or event, a changed meaning).
pub const SCHEMA_VERSION: u32 = 1;

static ENABLED: OnceLock<bool> = OnceLock::new();
static STDOUT: Mutex<()> = Mutex::new(());

/// Switch JSON mode on for the rest of the process (called once by `main`, before any flow).
pub fn enable() {
    let _ = ENABLED.set(true);
}

/// True in JSON mode.
pub fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

/// Which side of an offer we are.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// We offer it.
    Sender,
    /// We were offered it.
    Receiver,
}

/// What is offered.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    /// A text message.
    Text,
    /// One file.
    File,
    /// A directory (sent as a zip file).
    Directory,
}

/// How the transit connection was made, as scripts want to know it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Peer to peer.
    Direct,
    /// Through the transit relay.
    Relay,
}

impl Via {
    /// The kind of a library connection.
    pub fn of(kind: &ConnectionKind) -> Via {
        match kind {
            ConnectionKind::Relay => Via::Relay,
            ConnectionKind::DirectOutbound | ConnectionKind::DirectInbound => Via::Direct,
        }
    }
}

/// Which side dialled a direct connection.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled our listener.
    Inbound,
}

/// The figures of a finished transfer (also the human summary line).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Bytes that went through transit (`null` for a text message, which goes through the mailbox).
    pub bytes: Option<u64>,
    /// Seconds from the transit connection to the end of the data.
    pub seconds: Option<f64>,
    /// `bytes / seconds`.
    pub bytes_per_second: Option<f64>,
    /// How the transit connection was made.
    pub connection: Option<Via>,
}

/// Where a `--show-config` value came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    File,
    /// The built-in default.
    Default,
}

/// One `--show-config` setting.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setting {
    /// The config-file key (`relay-url`, …).
    pub key: String,
    /// The value in force (`null` for `appid`: the command's own).
    pub value: serde_json::Value,
    /// Where it came from.
    pub source: SettingSource,
    /// The flag or environment variable (`null` for the file and the default).
    pub from: Option<String>,
}

/// One event of a run. Serialized with `"event": "<snake_case name>"` and the fields below.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first line of every run.
    Start {
        /// `send`, `receive`, `ssh-invite`, `ssh-accept`, …
        command: String,
        /// This program's version.
        program_version: String,
    },
    /// The mailbox server's welcome.
    Welcome {
        /// Its message of the day.
        motd: Option<String>,
        /// The CLI version it calls current.
        current_cli_version: Option<String>,
    },
    /// The wormhole code, once it is known (allocated, given or typed).
    Code {
        /// The full code (`4-purple-sausages`).
        code: String,
    },
    /// The peer's PAKE message arrived: a shared key exists (not yet confirmed).
    KeyEstablished {},
    /// The peer proved it has the same key; the verifier both sides can compare.
    Verifier {
        /// 64 hex digits.
        verifier: String,
    },
    /// What is sent or was offered.
    Offer {
        /// Our side.
        role: Role,
        /// What it is.
        kind: OfferKind,
        /// File or directory name (`null` for text).
        name: Option<String>,
        /// Bytes on the wire (the zip's size for a directory, the UTF-8 length for text).
        bytes: u64,
        /// Files in a directory.
        files: Option<u64>,
        /// Uncompressed bytes of a directory.
        uncompressed_bytes: Option<u64>,
    },
    /// The transit connection is established.
    Connected {
        /// Direct or relayed.
        kind: Via,
        /// Who dialled a direct connection (`null` through a relay).
        direction: Option<Direction>,
        /// The remote address (`HOST:PORT`).
        peer: String,
        /// The Python CLI's description (`->tcp:HOST:PORT`, `<-HOST:PORT`, `->relay:tcp:…`).
        description: String,
    },
    /// Bytes moved so far (at most a few lines a second, and always the last one).
    Progress {
        /// Bytes so far.
        bytes: u64,
        /// All bytes.
        total: u64,
    },
    /// Sender: every byte is out; waiting for the receiver's confirmation.
    DataSent {},
    /// Receiver of a directory: the zip arrived and is being extracted.
    Unpacking {},
    /// A received text message, exactly as sent.
    TextReceived {
        /// The text.
        text: String,
    },
    /// A received file is complete at `path`.
    FileWritten {
        /// Where it is.
        path: String,
        /// Its size.
        bytes: u64,
        /// SHA-256 of its content, 64 hex digits.
        sha256: String,
    },
    /// A received directory is complete at `path`.
    DirectoryWritten {
        /// Where it is.
        path: String,
        /// Regular files extracted.
        files: u64,
        /// Bytes extracted.
        bytes: u64,
    },
    /// `ssh`: the public key that was sent or added.
    SshKey {
        /// `ssh-ed25519`, `ssh-rsa`, …
        key_type: String,
        /// The key's comment.
        keyid: String,
        /// `authorized_keys` it went to (`null` on the accepting side).
        path: Option<String>,
        /// False when it was there already (`null` on the accepting side).
        added: Option<bool>,
    },
    /// `--show-config --json`: the only line.
    Config {
        /// The config file read (`null`: none).
        file: Option<String>,
        /// Every setting.
        settings: Vec<Setting>,
    },
    /// The run succeeded; the last line.
    Done(Summary),
    /// The run failed; the last line.
    Error {
        /// A stable machine-readable kind (docs/cli-json.md lists them).
        kind: String,
        /// The message shown to people (also printed on stderr).
        message: String,
    },
}

impl Event {
    /// The `connected` event of a library connection.
    pub fn connected(info: &ConnectionInfo) -> Event {
        let direction = match info.kind {
            ConnectionKind::DirectOutbound => Some(Direction::Outbound),
            ConnectionKind::DirectInbound => Some(Direction::Inbound),
            ConnectionKind::Relay => None,
        };
        Event::Connected {
            kind: Via::of(&info.kind),
            direction,
            peer: info.peer.clone(),
            description: info.describe(),
        }
    }
}

/// One line: the schema version and the event.
#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a Event,
}

/// The line of `event`, without the newline.
pub fn to_line(event: &Event) -> String {
    serde_json::to_string(&Line {
        v: SCHEMA_VERSION,
        event,
    })
    .unwrap_or_else(|e| {
        serde_json::json!({
            "v": SCHEMA_VERSION,
            "event": "error",
            "kind": "internal",
            "message": format!("cannot write an event: {e}"),
        })
        .to_string()
    })
}

/// Write `event` on stdout (JSON mode only; nothing otherwise). Lines of concurrent callers
/// never interleave; a closed stdout is ignored like every other message.
pub fn emit(event: &Event) {
    if !enabled() {
        return;
    }
    let line = to_line(event);
    let _guard = STDOUT.lock();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A line the Python CLI prints on stdout (the `ssh` messages): stdout normally, stderr in
/// JSON mode (so stdout holds only events).
pub fn say(line: &str) {
    if enabled() {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lines_carry_version_and_name() {
        let l = to_line(&Event::Code { code: "4-a-b".into() });
        assert_eq!(l, r#"{"v":1,"event":"code","code":"4-a-b"}"#);
        let l = to_line(&Event::KeyEstablished {});
        assert_eq!(l, r#"{"v":1,"event":"key_established"}"#);
        let l = to_line(&Event::Done(Summary::default()));
        assert_eq!(
            l,
            r#"{"v":1,"event":"done","bytes":null,"seconds":null,"bytes_per_second":null,"connection":null}"#
        );
    }

    /// One of every event. The match makes a new variant fail to compile here until it has a
    /// sample (and so a schema check below).
    fn samples() -> Vec<Event> {
        let all = vec![
            Event::Start {
                command: "send".into(),
                program_version: "0.1.0".into(),
            },
            Event::Welcome {
                motd: Some("hi".into()),
                current_cli_version: None,
            },
            Event::Code { code: "4-a-b".into() },
            Event::KeyEstablished {},
            Event::Verifier {
                verifier: "ab".repeat(32),
            },
            Event::Offer {
                role: Role::Receiver,
                kind: OfferKind::Directory,
                name: Some("d".into()),
                bytes: 10,
                files: Some(2),
                uncompressed_bytes: Some(20),
            },
            Event::connected(&ConnectionInfo {
                kind: ConnectionKind::DirectOutbound,
                peer: "127.0.0.1:1".into(),
            }),
            Event::Progress { bytes: 1, total: 2 },
            Event::DataSent {},
            Event::Unpacking {},
            Event::TextReceived { text: "t".into() },
            Event::FileWritten {
                path: "/p".into(),
                bytes: 1,
                sha256: "cd".repeat(32),
            },
            Event::DirectoryWritten {
                path: "/d".into(),
                files: 1,
                bytes: 1,
            },
            Event::SshKey {
                key_type: "ssh-ed25519".into(),
                keyid: "me".into(),
                path: None,
                added: None,
            },
            Event::Config {
                file: None,
                settings: vec![Setting {
                    key: "qr".into(),
                    value: true.into(),
                    source: SettingSource::Env,
                    from: Some("WORMHOLE_QR".into()),
                }],
            },
            Event::Done(Summary {
                bytes: Some(1),
                seconds: Some(0.5),
                bytes_per_second: Some(2.0),
                connection: Some(Via::Relay),
            }),
            Event::Error {
                kind: "wrong_code".into(),
                message: "m".into(),
            },
        ];
        for e in &all {
            match e {
                Event::Start { .. }
                | Event::Welcome { .. }
                | Event::Code { .. }
                | Event::KeyEstablished {}
                | Event::Verifier { .. }
                | Event::Offer { .. }
                | Event::Connected { .. }
                | Event::Progress { .. }
                | Event::DataSent {}
                | Event::Unpacking {}
                | Event::TextReceived { .. }
                | Event::FileWritten { .. }
                | Event::DirectoryWritten { .. }
                | Event::SshKey { .. }
                | Event::Config { .. }
                | Event::Done(_)
                | Event::Error { .. } => {}
            }
        }
        all
    }

    /// A typed check against docs/cli-json.schema.json (the interop test validates real runs with
    /// a JSON Schema validator): every event is defined there with exactly our fields, all
    /// required, and nothing else.
    #[test]
    fn every_event_matches_the_schema_file() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/cli-json.schema.json")).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        let samples = samples();
        assert_eq!(
            defs.len(),
            samples.len(),
            "the schema and the Event enum list different events"
        );
        for e in &samples {
            let line: serde_json::Value = serde_json::from_str(&to_line(e)).unwrap();
            let name = line["event"].as_str().unwrap();
            let def = &defs
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not in the schema"));
            assert_eq!(def["additionalProperties"], false, "{name}");
            let mut fields: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
            let mut props: Vec<&str> = def["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut required: Vec<&str> = def["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            fields.sort_unstable();
            props.sort_unstable();
            required.sort_unstable();
            assert_eq!(fields, props, "{name}: fields differ from the schema");
            assert_eq!(fields, required, "{name}: every field is required");
        }
        let kinds = &defs["error"]["properties"]["kind"]["enum"];
        for k in crate::report::ERROR_KINDS
            .iter()
            .chain(["usage", "config", "interrupted", "internal"].iter())
        {
            assert!(
                kinds.as_array().unwrap().iter().any(|v| v == k),
                "error kind {k} is not in the schema"
            );
        }
    }

    #[test]
    fn connection_kinds() {
        let e = Event::connected(&ConnectionInfo {
            kind: ConnectionKind::Relay,
            peer: "127.0.0.1:4001".into(),
        });
        let l = to_line(&e);
        assert!(l.contains(r#""kind":"relay","direction":null"#), "{l}");
        assert!(l.contains(r#""description":"->relay:tcp:127.0.0.1:4001""#), "{l}");
        let e = Event::connected(&ConnectionInfo {
            kind: ConnectionKind::DirectInbound,
            peer: "127.0.0.1:5".into(),
        });
        assert!(to_line(&e).contains(r#""kind":"direct","direction":"inbound""#));
    }
}
