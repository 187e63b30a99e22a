//! The command-line surface of `wormhole`, flag-compatible with the Python CLI 0.24 (docs/protocol.md
//! §5.7), and its resolution into plain option structs.
//!
//! Environment variables are not read by clap: [`Cli::resolve`] takes a lookup function and the
//! config file's values, so the precedence rule (flag, then environment, then config file, then
//! default; [`Settings`], shown by `--show-config`) is unit-tested without touching the process
//! environment. This module must not do I/O or talk to the network.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::config::Loaded;
use crate::tor::TorMode;
use wormhole::net::Dialer;

/// The default application id (file transfer).
pub const APPID_XFER: &str = "lothar.com/wormhole/text-or-file-xfer";
/// The application id of `wormhole ssh`.
pub const APPID_SSH: &str = "lothar.com/wormhole/ssh-add";
/// The public mailbox server.
pub const DEFAULT_RELAY_URL: &str = "ws://relay.magic-wormhole.io:4000/v1";
/// The public transit relay.
pub const DEFAULT_TRANSIT_HELPER: &str = "tcp:transit.magic-wormhole.io:4001";

/// Env var naming the mailbox server (the Python meaning, not wormhole-rs's).
pub const ENV_RELAY_URL: &str = "WORMHOLE_RELAY_URL";
/// Env var naming the transit relay.
pub const ENV_TRANSIT_HELPER: &str = "WORMHOLE_TRANSIT_HELPER";
/// Env var: accept file offers without asking.
pub const ENV_ACCEPT_FILE: &str = "WORMHOLE_ACCEPT_FILE";
/// Env var: show the QR code of the send code.
pub const ENV_QR: &str = "WORMHOLE_QR";
/// Env var: the application id.
pub const ENV_APPID: &str = "WORMHOLE_APPID";
/// Env var: words of an allocated code.
pub const ENV_CODE_LENGTH: &str = "WORMHOLE_CODE_LENGTH";
/// Env var: no progress bar.
pub const ENV_HIDE_PROGRESS: &str = "WORMHOLE_HIDE_PROGRESS";

/// The state machines the Python CLI can trace with `--debug-state`.
const DEBUG_MACHINES: [&str; 12] = ["B", "N", "M", "S", "O", "K", "SK", "R", "RC", "L", "C", "T"];

/// Create a Magic Wormhole and communicate through it.
///
/// Wormholes are created by speaking the same magic CODE in two different places at the same
/// time. Wormholes are secure against anyone who doesn't use the same code.
#[derive(Debug, Parser)]
#[command(
    name = "magic-wormhole",
    bin_name = "wormhole",
    version,
    after_help = "Environment: WORMHOLE_TRANSIT_CRYPTO=auto|rustcrypto picks the transit encryption: auto (default) the fastest\nself-tested SIMD code this CPU has, rustcrypto the audited RustCrypto secretbox."
)]
pub struct Cli {
    /// appid to use
    #[arg(long, value_name = "APPID", global = true)]
    pub appid: Option<String>,
    /// rendezvous relay (mailbox server) to use: ws://HOST:PORT/v1, or wss://HOST[:PORT]/v1 for
    /// TLS (trusting the system's CAs and SSL_CERT_FILE) [env: WORMHOLE_RELAY_URL] [default:
    /// ws://relay.magic-wormhole.io:4000/v1]
    #[arg(long, value_name = "URL", global = true)]
    pub relay_url: Option<String>,
    /// transit relay to use [env: WORMHOLE_TRANSIT_HELPER] [default:
    /// tcp:transit.magic-wormhole.io:4001]; also its WebSocket port as ws://… or wss://…, or
    /// both separated by a comma (the WebSocket is used when TCP to the relay fails)
    #[arg(long, value_name = "tcp:HOST:PORT", global = true)]
    pub transit_helper: Option<String>,
    /// (debug) write timing data to file
    #[arg(long, value_name = "FILE.json", global = true)]
    pub dump_timing: Option<PathBuf>,
    /// print events as JSON lines on stdout (schema: docs/cli-json.md); never prompt
    #[arg(long, global = true)]
    pub json: bool,
    /// read defaults from this TOML file [env: WORMHOLE_CONFIG] [default:
    /// $XDG_CONFIG_HOME/wormhole/config.toml or ~/.config/wormhole/config.toml, if present]
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// print every setting, its value and where it came from (flag, environment, config file,
    /// default), then exit
    #[arg(long, global = true)]
    pub show_config: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a text message, file, or directory
    #[command(visible_alias = "tx")]
    Send(SendArgs),
    /// Receive a text message, file, or directory (from 'wormhole send')
    #[command(visible_alias = "rx", aliases = ["recv", "recieve"])]
    Receive(ReceiveArgs),
    /// Facilitate sending/receiving SSH public keys
    #[command(subcommand)]
    Ssh(SshCommand),
    /// Forward TCP ports over a dilated wormhole, with fowl's protocol: offer a local service
    /// (--service) or use the peer's (--client); works with `fowl` and `fowld` on the other side
    Forward(crate::forward_args::ForwardArgs),
    /// Print a shell completion script (e.g. `wormhole completions bash > /etc/bash_completion.d/wormhole`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff) on stdout (e.g. `wormhole man > wormhole.1`, `wormhole man
    /// send > wormhole-send.1`)
    Man {
        /// The (sub)command whose page to print (none: the main page)
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// Options shared by `send` and `receive`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// enable no-code anything-goes mode
    #[arg(short = '0')]
    pub zeromode: bool,
    /// length of code (in bytes/words)
    #[arg(short = 'c', long, value_name = "NUMWORDS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub code_length: Option<u16>,
    /// display verification string (and wait for approval)
    #[arg(short = 'v', long)]
    pub verify: bool,
    /// suppress progress-bar display
    #[arg(long)]
    pub hide_progress: bool,
    /// (debug) open a listening socket for Transit (the default)
    #[arg(long, overrides_with = "no_listen")]
    pub listen: bool,
    /// (debug) don't open a listening socket for Transit
    #[arg(long, overrides_with = "listen")]
    pub no_listen: bool,
    /// (debug) trace state-machine transitions (accepted for compatibility; not implemented)
    #[arg(long, value_name = "MACHINES", num_args = 0..=1,
          default_missing_value = "B,N,M,S,O,K,SK,R,RC,L,C,T")]
    pub debug_state: Option<String>,
    #[command(flatten)]
    pub tor: TorArgs,
}

/// The Tor options of the Python CLI, plus `--tor-socks` and `--tor-bootstrap-timeout`.
#[derive(Debug, Args, Default)]
pub struct TorArgs {
    /// use Tor when connecting: every connection goes through Tor's SOCKS port (127.0.0.1:9050,
    /// or Tor Browser's 9150), with no listening socket and no local addresses revealed
    #[arg(long)]
    pub tor: bool,
    /// launch Tor, rather than use existing control/socks port (implies --tor; Tor is stopped
    /// at exit)
    #[arg(long)]
    pub launch_tor: bool,
    /// endpoint descriptor for Tor control port (tcp:HOST:PORT, unix:PATH or a port; asked
    /// where the SOCKS port is; implies --tor)
    #[arg(long, value_name = "ENDPOINT")]
    pub tor_control_port: Option<String>,
    /// Tor's SOCKS port, HOST:PORT, instead of looking for it (implies --tor)
    #[arg(long, value_name = "HOST:PORT")]
    pub tor_socks: Option<String>,
    /// with --launch-tor: give up when Tor has not bootstrapped after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub tor_bootstrap_timeout: u64,
}

/// `wormhole send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// human-generated code phrase
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// text message to send, instead of a file. Use '-' to read from stdin.
    #[arg(long, value_name = "MESSAGE", conflicts_with = "what")]
    pub text: Option<String>,
    /// Don't raise an error if a file can't be read.
    #[arg(long)]
    pub ignore_unsendable_files: bool,
    /// Generate and show ASCII-based QR code (the default) [env: WORMHOLE_QR]
    #[arg(long, overrides_with = "no_qr")]
    pub qr: bool,
    /// Don't show the QR code
    #[arg(long, overrides_with = "qr")]
    pub no_qr: bool,
    /// The file or directory to send (`-`, or nothing with a piped stdin: standard input, sent
    /// as text when it is short UTF-8 text, otherwise as a file named `stdin`)
    #[arg(value_name = "WHAT")]
    pub what: Option<PathBuf>,
    /// More files or directories to send in the same session (needs a peer that speaks the
    /// Dilated File-Transfer protocol, i.e. this program)
    #[arg(value_name = "MORE")]
    pub more: Vec<PathBuf>,
    /// Use the classic file-transfer protocol even when the peer speaks the Dilated one
    #[arg(long)]
    pub classic: bool,
    /// With `-`: the name to offer standard input under; it is then streamed as it is read
    /// (to a peer of ours; a classic peer gets it spooled, as a file)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `wormhole receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// refuse file transfers, only accept text transfers
    #[arg(short = 't', long)]
    pub only_text: bool,
    /// accept file transfer without asking for confirmation [env: WORMHOLE_ACCEPT_FILE]
    #[arg(long)]
    pub accept_file: bool,
    /// The file or directory to create, overriding the name suggested by the sender. If the
    /// directory exists already, the incoming transfer will be put inside the specified
    /// directory.
    #[arg(short = 'o', long, value_name = "FILENAME|DIRNAME")]
    pub output_file: Option<PathBuf>,
    /// Allocate a fresh code (do not prompt for one)
    #[arg(short = 'a', long)]
    pub allocate: bool,
    /// The magic-wormhole code, from the sender. If omitted, the program will ask for it, using
    /// tab-completion.
    #[arg(value_name = "CODE")]
    pub code: Option<String>,
    /// Use the classic file-transfer protocol even when the peer speaks the Dilated one
    #[arg(long)]
    pub classic: bool,
}

/// `wormhole ssh …`.
#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Add a public-key to a ~/.ssh/authorized_keys file
    Invite {
        /// length of code (in bytes/words) [default: 2]
        #[arg(short = 'c', long, value_name = "NUMWORDS",
              value_parser = clap::value_parser!(u16).range(1..=64))]
        code_length: Option<u16>,
        /// Add to USER's ~/.ssh/authorized_keys
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        tor: TorArgs,
    },
    /// Send your SSH public-key
    ///
    /// In response to a 'wormhole ssh invite' this will send the public-key you specify (if there's
    /// only one in ~/.ssh/* that will be sent).
    Accept {
        /// The code printed by 'wormhole ssh invite'
        #[arg(value_name = "CODE")]
        code: String,
        /// The public-key file (or directory of *.pub files) to send
        #[arg(short = 'F', long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Skip confirmation prompt to send key
        #[arg(short = 'y', long)]
        yes: bool,
        #[command(flatten)]
        tor: TorArgs,
    },
}

/// A usage error found after clap parsing (a bad combination or a bad environment value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// A receive code was given together with `--allocate`.
    #[error("Cannot specify a code when using --allocate")]
    CodeWithAllocate,
    /// `receive -c` without `--allocate`.
    #[error("Must use --allocate with --code-length")]
    CodeLengthWithoutAllocate,
    /// `-0` together with an explicit code.
    #[error("-0 (no-code mode) cannot be combined with a code")]
    ZeroModeWithCode,
    /// `-0` together with `--allocate`.
    #[error("-0 (no-code mode) cannot be combined with --allocate")]
    ZeroModeWithAllocate,
    /// `--launch-tor` together with a running Tor's port.
    #[error("--launch-tor starts a Tor of its own: drop --tor-control-port and --tor-socks")]
    LaunchTorWithPort,
    /// An environment variable held something that is not a boolean.
    #[error("invalid value {value:?} for {name}: expected one of 1/0, true/false, yes/no, on/off")]
    BadBoolEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// An environment variable held something that is not a code length.
    #[error("invalid value {value:?} for {name}: expected a number from 1 to 64")]
    BadNumberEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// No subcommand (and no `--show-config`).
    #[error("a subcommand is required (send, receive, ssh, forward, completions, man); see --help")]
    MissingCommand,
    /// `--json` with an option that asks a question on the terminal.
    #[error("--json cannot answer questions: {0}")]
    JsonPrompt(&'static str),
    /// A `forward` argument that does not parse (or a bad combination of them).
    #[error("{0}")]
    Forward(String),
    /// `--debug-state` named a machine that does not exist.
    #[error("Cannot debug unknown machines: {0}")]
    UnknownDebugMachines(String),
}

/// Options every command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalOptions {
    /// Application id; `None` means the command's default.
    pub appid: Option<String>,
    /// Mailbox server URL.
    pub relay_url: String,
    /// Transit relay: `tcp:HOST:PORT`, a `ws://`/`wss://` URL of its WebSocket port, or both
    /// separated by a comma.
    pub transit_helper: String,
    /// Where to write the timing dump.
    pub dump_timing: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--tor`, `--tor-control-port`, `--tor-socks`, `--launch-tor`.
    pub tor: TorMode,
    /// How connections are made (set once Tor is found, before the wormhole opens).
    pub dialer: Dialer,
}

/// Resolved `send` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// Use this code instead of allocating one (`-0` sets `0-`).
    pub code: Option<String>,
    /// `-0` was given.
    pub zeromode: bool,
    /// Number of words to allocate.
    pub code_length: usize,
    /// Ask the user to confirm the verifier.
    pub verify: bool,
    /// No progress bar.
    pub hide_progress: bool,
    /// Open a listening socket for transit.
    pub listen: bool,
    /// Show the QR code.
    pub qr: bool,
    /// The text to send (`-` = stdin), if any.
    pub text: Option<String>,
    /// The file or directory to send, if any.
    pub what: Option<PathBuf>,
    /// Skip unreadable files of a directory instead of failing.
    pub ignore_unsendable_files: bool,
    /// More paths to send (transfer-v2 only).
    pub more: Vec<PathBuf>,
    /// `--classic`: never use transfer-v2.
    pub classic: bool,
    /// `--name` for standard input.
    pub name: Option<String>,
}

/// Resolved `receive` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// The code to use (`-0` sets `0-`); `None` means allocate or ask.
    pub code: Option<String>,
    /// `-0` was given.
    pub zeromode: bool,
    /// Allocate a code instead of asking for one.
    pub allocate: bool,
    /// Number of words to allocate.
    pub code_length: usize,
    /// Print the verifier.
    pub verify: bool,
    /// No progress bar.
    pub hide_progress: bool,
    /// Open a listening socket for transit.
    pub listen: bool,
    /// Refuse file and directory offers.
    pub only_text: bool,
    /// Accept file offers without asking.
    pub accept_file: bool,
    /// Where to write the received file or directory.
    pub output_file: Option<PathBuf>,
    /// `--classic`: never use transfer-v2.
    pub classic: bool,
}

/// Resolved `ssh` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshOptions {
    /// `ssh invite`.
    Invite {
        /// Number of words to allocate.
        code_length: usize,
        /// Whose `authorized_keys` to append to.
        user: Option<String>,
    },
    /// `ssh accept`.
    Accept {
        /// The code.
        code: String,
        /// The key file or directory.
        key_file: Option<PathBuf>,
        /// Skip the confirmation prompt.
        yes: bool,
    },
}

/// A fully resolved invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `wormhole send`.
    Send(GlobalOptions, SendOptions),
    /// `wormhole receive`.
    Receive(GlobalOptions, ReceiveOptions),
    /// `wormhole ssh …`.
    Ssh(GlobalOptions, SshOptions),
    /// `wormhole forward`.
    Forward(GlobalOptions, crate::forward_args::ForwardOptions),
    /// `wormhole completions SHELL`.
    Completions(Shell),
    /// `wormhole man [COMMAND…]`.
    Man(Vec<String>),
    /// `--show-config`.
    ShowConfig(Box<Settings>),
}

impl Invocation {
    /// The options every wormhole-opening command has.
    pub fn global_mut(&mut self) -> Option<&mut GlobalOptions> {
        match self {
            Invocation::Send(g, _)
            | Invocation::Receive(g, _)
            | Invocation::Ssh(g, _)
            | Invocation::Forward(g, _) => Some(g),
            Invocation::Completions(_) | Invocation::Man(_) | Invocation::ShowConfig(_) => None,
        }
    }
}

/// Parse a Click-style boolean environment value. An empty value counts as unset.
fn env_bool(name: &'static str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<bool>, UsageError> {
    let Some(value) = env(name) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(Some(true)),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(Some(false)),
        _ => Err(UsageError::BadBoolEnv { name, value }),
    }
}

/// An env var as a non-empty string.
fn env_string(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// A code length from the environment (1 to 64). An empty value counts as unset.
fn env_code_length(
    name: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<u16>, UsageError> {
    let Some(value) = env(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<u16>() {
        Ok(n @ 1..=64) => Ok(Some(n)),
        _ => Err(UsageError::BadNumberEnv { name, value }),
    }
}

fn tor_mode(tor: &TorArgs) -> Result<TorMode, UsageError> {
    if tor.launch_tor {
        if tor.tor_control_port.is_some() || tor.tor_socks.is_some() {
            return Err(UsageError::LaunchTorWithPort);
        }
        return Ok(TorMode::Launch {
            bootstrap_timeout: std::time::Duration::from_secs(tor.tor_bootstrap_timeout.max(1)),
        });
    }
    if tor.tor || tor.tor_control_port.is_some() || tor.tor_socks.is_some() {
        return Ok(TorMode::Running {
            socks: tor.tor_socks.clone(),
            control: tor.tor_control_port.clone(),
        });
    }
    Ok(TorMode::Off)
}

fn check_debug_state(common: &CommonArgs) -> Result<(), UsageError> {
    if let Some(list) = &common.debug_state {
        let unknown: Vec<&str> = list.split(',').filter(|m| !DEBUG_MACHINES.contains(m)).collect();
        if !unknown.is_empty() {
            return Err(UsageError::UnknownDebugMachines(unknown.join(" ")));
        }
    }
    Ok(())
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The config file.
    File,
    /// The built-in default.
    Default,
}

/// A setting's value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value in force.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// The first of flag, environment, config file, default that is set.
fn layered<T>(
    flag: Option<(T, &'static str)>,
    env: Option<(T, &'static str)>,
    file: Option<T>,
    default: T,
) -> Sourced<T> {
    if let Some((value, name)) = flag {
        return Sourced {
            value,
            source: Source::Flag(name),
        };
    }
    if let Some((value, name)) = env {
        return Sourced {
            value,
            source: Source::Env(name),
        };
    }
    match file {
        Some(value) => Sourced {
            value,
            source: Source::File,
        },
        None => Sourced {
            value: default,
            source: Source::Default,
        },
    }
}

/// The settings a config file can hold, resolved for this run (flag > env > file > default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// Where the default config file would be, when there was none.
    pub config_looked_at: Option<PathBuf>,
    /// `relay-url`.
    pub relay_url: Sourced<String>,
    /// `transit-helper`.
    pub transit_helper: Sourced<String>,
    /// `appid` (`None`: the command's own).
    pub appid: Sourced<Option<String>>,
    /// `code-length`.
    pub code_length: Sourced<u16>,
    /// `qr`.
    pub qr: Sourced<bool>,
    /// `hide-progress`.
    pub hide_progress: Sourced<bool>,
    /// `accept-file`.
    pub accept_file: Sourced<bool>,
}

/// The flags of the settings, wherever on the command line they were given.
#[derive(Debug, Default)]
struct SettingFlags {
    relay_url: Option<String>,
    transit_helper: Option<String>,
    appid: Option<String>,
    code_length: Option<u16>,
    qr: Option<bool>,
    hide_progress: bool,
    accept_file: bool,
}

fn env_pair<T>(v: Option<T>, name: &'static str) -> Option<(T, &'static str)> {
    v.map(|v| (v, name))
}

impl Settings {
    fn resolve(
        flags: SettingFlags,
        env: &dyn Fn(&str) -> Option<String>,
        file: &Loaded,
    ) -> Result<Settings, UsageError> {
        let f = &file.values;
        Ok(Settings {
            config_file: file.path.clone(),
            config_looked_at: file.looked_at.clone(),
            relay_url: layered(
                flags.relay_url.map(|v| (v, "--relay-url")),
                env_pair(env_string(ENV_RELAY_URL, env), ENV_RELAY_URL),
                f.relay_url.clone(),
                DEFAULT_RELAY_URL.to_owned(),
            ),
            transit_helper: layered(
                flags.transit_helper.map(|v| (v, "--transit-helper")),
                env_pair(env_string(ENV_TRANSIT_HELPER, env), ENV_TRANSIT_HELPER),
                f.transit_helper.clone(),
                DEFAULT_TRANSIT_HELPER.to_owned(),
            ),
            appid: layered(
                flags.appid.map(|v| (Some(v), "--appid")),
                env_pair(env_string(ENV_APPID, env).map(Some), ENV_APPID),
                f.appid.clone().map(Some),
                None,
            ),
            code_length: layered(
                flags.code_length.map(|v| (v, "--code-length")),
                env_pair(env_code_length(ENV_CODE_LENGTH, env)?, ENV_CODE_LENGTH),
                f.code_length,
                2,
            ),
            qr: layered(
                flags.qr.map(|v| (v, if v { "--qr" } else { "--no-qr" })),
                env_pair(env_bool(ENV_QR, env)?, ENV_QR),
                f.qr,
                true,
            ),
            hide_progress: layered(
                flags.hide_progress.then_some((true, "--hide-progress")),
                env_pair(env_bool(ENV_HIDE_PROGRESS, env)?, ENV_HIDE_PROGRESS),
                f.hide_progress,
                false,
            ),
            accept_file: layered(
                flags.accept_file.then_some((true, "--accept-file")),
                env_pair(env_bool(ENV_ACCEPT_FILE, env)?, ENV_ACCEPT_FILE),
                f.accept_file,
                false,
            ),
        })
    }

    /// Every setting: its config-file key, its value (`null`: the command's own appid) and its
    /// source.
    pub fn entries(&self) -> Vec<(&'static str, serde_json::Value, Source)> {
        use serde_json::Value;
        vec![
            (
                "relay-url",
                Value::from(self.relay_url.value.clone()),
                self.relay_url.source.clone(),
            ),
            (
                "transit-helper",
                Value::from(self.transit_helper.value.clone()),
                self.transit_helper.source.clone(),
            ),
            (
                "appid",
                self.appid.value.clone().map_or(Value::Null, Value::from),
                self.appid.source.clone(),
            ),
            (
                "code-length",
                Value::from(self.code_length.value),
                self.code_length.source.clone(),
            ),
            ("qr", Value::from(self.qr.value), self.qr.source.clone()),
            (
                "hide-progress",
                Value::from(self.hide_progress.value),
                self.hide_progress.source.clone(),
            ),
            (
                "accept-file",
                Value::from(self.accept_file.value),
                self.accept_file.source.clone(),
            ),
        ]
    }

    /// The `--show-config` text: the config file, then one `key = value  # source` line per
    /// setting (TOML, so it can be pasted into a config file).
    pub fn render(&self) -> String {
        let file = match (&self.config_file, &self.config_looked_at) {
            (Some(p), _) => format!("# config file: {}", p.display()),
            (None, Some(p)) => format!("# config file: none ({} does not exist)", p.display()),
            (None, None) => "# config file: none".to_owned(),
        };
        let mut lines = vec![file];
        for (key, value, source) in self.entries() {
            let from = match source {
                Source::Flag(f) => format!("flag {f}"),
                Source::Env(e) => format!("environment {e}"),
                Source::File => "config file".to_owned(),
                Source::Default => "default".to_owned(),
            };
            lines.push(match value {
                serde_json::Value::String(s) => format!("{key} = {}  # {from}", toml_string(&s)),
                serde_json::Value::Null => format!(
                    "# {key} = {}  # {from} (ssh: {})",
                    toml_string(APPID_XFER),
                    toml_string(APPID_SSH)
                ),
                other => format!("{key} = {other}  # {from}"),
            });
        }
        lines.join("\n")
    }
}

/// A TOML basic string.
fn toml_string(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Cli {
    /// The setting flags given anywhere on this command line.
    fn setting_flags(&self) -> SettingFlags {
        let mut flags = SettingFlags {
            relay_url: self.relay_url.clone(),
            transit_helper: self.transit_helper.clone(),
            appid: self.appid.clone(),
            ..SettingFlags::default()
        };
        match &self.command {
            Some(Command::Send(a)) => {
                flags.code_length = a.common.code_length;
                flags.hide_progress = a.common.hide_progress;
                flags.qr = if a.qr {
                    Some(true)
                } else if a.no_qr {
                    Some(false)
                } else {
                    None
                };
            }
            Some(Command::Receive(a)) => {
                flags.code_length = a.common.code_length;
                flags.hide_progress = a.common.hide_progress;
                flags.accept_file = a.accept_file;
            }
            Some(Command::Ssh(SshCommand::Invite { code_length, .. })) => flags.code_length = *code_length,
            Some(Command::Forward(a)) => {
                flags.code_length = a.code_length;
                if let Some(m) = &a.mailbox {
                    flags.relay_url = Some(crate::forward_args::mailbox_url(m));
                }
            }
            _ => {}
        }
        flags
    }

    /// Apply the environment, the config file and the defaults, and check the combinations
    /// clap cannot express.
    pub fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        file: &Loaded,
    ) -> Result<Invocation, UsageError> {
        let settings = Settings::resolve(self.setting_flags(), env, file)?;
        if self.show_config {
            return Ok(Invocation::ShowConfig(Box::new(settings)));
        }
        let mut global = GlobalOptions {
            tor: TorMode::Off,
            dialer: Dialer::Direct,
            appid: settings.appid.value.clone(),
            relay_url: settings.relay_url.value.clone(),
            transit_helper: settings.transit_helper.value.clone(),
            dump_timing: self.dump_timing,
            json: self.json,
        };
        let json = self.json;
        let code_length = usize::from(settings.code_length.value);
        match self.command.ok_or(UsageError::MissingCommand)? {
            Command::Send(a) => {
                global.tor = tor_mode(&a.common.tor)?;
                check_debug_state(&a.common)?;
                if a.common.zeromode && a.code.is_some() {
                    return Err(UsageError::ZeroModeWithCode);
                }
                if json && a.common.verify {
                    return Err(UsageError::JsonPrompt(
                        "--verify asks to confirm the verifier; drop it (the verifier event shows it)",
                    ));
                }
                let code = if a.common.zeromode {
                    Some("0-".to_owned())
                } else {
                    a.code
                };
                Ok(Invocation::Send(
                    global,
                    SendOptions {
                        code,
                        zeromode: a.common.zeromode,
                        code_length,
                        verify: a.common.verify,
                        hide_progress: settings.hide_progress.value,
                        listen: !a.common.no_listen,
                        qr: settings.qr.value,
                        text: a.text,
                        what: a.what,
                        ignore_unsendable_files: a.ignore_unsendable_files,
                        more: a.more,
                        classic: a.classic,
                        name: a.name,
                    },
                ))
            }
            Command::Receive(a) => {
                global.tor = tor_mode(&a.common.tor)?;
                check_debug_state(&a.common)?;
                if a.code.is_some() && a.allocate {
                    return Err(UsageError::CodeWithAllocate);
                }
                if a.common.code_length.is_some() && !a.allocate {
                    return Err(UsageError::CodeLengthWithoutAllocate);
                }
                if a.common.zeromode && a.code.is_some() {
                    return Err(UsageError::ZeroModeWithCode);
                }
                if a.common.zeromode && a.allocate {
                    return Err(UsageError::ZeroModeWithAllocate);
                }
                if json && a.code.is_none() && !a.allocate && !a.common.zeromode {
                    return Err(UsageError::JsonPrompt(
                        "the code cannot be typed; give it as an argument (or use --allocate)",
                    ));
                }
                let code = if a.common.zeromode {
                    Some("0-".to_owned())
                } else {
                    a.code
                };
                Ok(Invocation::Receive(
                    global,
                    ReceiveOptions {
                        code,
                        zeromode: a.common.zeromode,
                        allocate: a.allocate,
                        code_length,
                        verify: a.common.verify,
                        hide_progress: settings.hide_progress.value,
                        listen: !a.common.no_listen,
                        only_text: a.only_text,
                        accept_file: settings.accept_file.value,
                        output_file: a.output_file,
                        classic: a.classic,
                    },
                ))
            }
            Command::Ssh(SshCommand::Invite { user, tor, .. }) => {
                global.tor = tor_mode(&tor)?;
                Ok(Invocation::Ssh(global, SshOptions::Invite { code_length, user }))
            }
            Command::Ssh(SshCommand::Accept {
                code,
                key_file,
                yes,
                tor,
            }) => {
                global.tor = tor_mode(&tor)?;
                if json && !yes {
                    return Err(UsageError::JsonPrompt(
                        "ssh accept asks before sending the key; give --yes",
                    ));
                }
                Ok(Invocation::Ssh(
                    global,
                    SshOptions::Accept { code, key_file, yes },
                ))
            }
            Command::Forward(mut a) => {
                if a.ip_privacy {
                    a.tor.tor = true;
                }
                global.tor = tor_mode(&a.tor)?;
                let opts = a.resolve(code_length, json).map_err(UsageError::Forward)?;
                // forward writes fowld's JSON messages itself, not the send/receive events.
                global.json = false;
                Ok(Invocation::Forward(global, opts))
            }
            Command::Completions { shell } => Ok(Invocation::Completions(shell)),
            Command::Man { command } => Ok(Invocation::Man(command)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::CommandFactory;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(args: &[&str]) -> Result<Invocation, UsageError> {
        parse_env(args, &no_env)
    }

    fn parse_env(args: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, UsageError> {
        let mut argv = vec!["wormhole"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .unwrap()
            .resolve(env, &Loaded::default())
    }

    fn send(args: &[&str]) -> (GlobalOptions, SendOptions) {
        match parse(args).unwrap() {
            Invocation::Send(g, s) => (g, s),
            other => panic!("not send: {other:?}"),
        }
    }

    fn receive_env(args: &[&str], env: &dyn Fn(&str) -> Option<String>) -> (GlobalOptions, ReceiveOptions) {
        match parse_env(args, env).unwrap() {
            Invocation::Receive(g, r) => (g, r),
            other => panic!("not receive: {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let (g, s) = send(&["send", "--text", "hi"]);
        assert_eq!(g.relay_url, DEFAULT_RELAY_URL);
        assert_eq!(g.transit_helper, DEFAULT_TRANSIT_HELPER);
        assert_eq!(g.appid, None);
        assert_eq!(s.code_length, 2);
        assert!(s.qr && s.listen && !s.verify && !s.hide_progress);
        assert_eq!(s.text.as_deref(), Some("hi"));
        assert_eq!(s.code, None);
    }

    #[test]
    fn aliases_reach_the_same_commands() {
        assert!(matches!(parse(&["tx", "--text", "x"]), Ok(Invocation::Send(..))));
        for alias in ["receive", "rx", "recv", "recieve"] {
            assert!(
                matches!(parse(&[alias, "1-a-b"]), Ok(Invocation::Receive(..))),
                "{alias}"
            );
        }
    }

    #[test]
    fn env_precedence_flag_then_env_then_default() {
        let env = |k: &str| match k {
            ENV_RELAY_URL => Some("ws://env:1/v1".to_owned()),
            ENV_TRANSIT_HELPER => Some("tcp:env:2".to_owned()),
            _ => None,
        };
        let (g, _) = receive_env(&["receive", "1-x"], &env);
        assert_eq!(g.relay_url, "ws://env:1/v1");
        assert_eq!(g.transit_helper, "tcp:env:2");
        let (g, _) = receive_env(
            &[
                "--relay-url",
                "ws://flag/v1",
                "--transit-helper",
                "tcp:flag:3",
                "receive",
                "1-x",
            ],
            &env,
        );
        assert_eq!(g.relay_url, "ws://flag/v1");
        assert_eq!(g.transit_helper, "tcp:flag:3");
        // Global options are also accepted after the subcommand.
        let (g, _) = receive_env(&["receive", "--relay-url", "ws://late/v1", "1-x"], &env);
        assert_eq!(g.relay_url, "ws://late/v1");
    }

    #[test]
    fn file_sits_between_env_and_default() {
        let file = Loaded {
            path: Some(PathBuf::from("/c.toml")),
            looked_at: None,
            values: crate::config_file::FileConfig {
                relay_url: Some("ws://file/v1".into()),
                code_length: Some(4),
                qr: Some(false),
                hide_progress: Some(true),
                accept_file: Some(true),
                appid: Some("file/app".into()),
                transit_helper: None,
            },
        };
        let run = |args: &[&str], env: &dyn Fn(&str) -> Option<String>| {
            let mut argv = vec!["wormhole"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap().resolve(env, &file).unwrap()
        };
        let Invocation::Send(g, s) = run(&["send", "f"], &no_env) else {
            panic!()
        };
        assert_eq!(g.relay_url, "ws://file/v1");
        assert_eq!(g.transit_helper, DEFAULT_TRANSIT_HELPER);
        assert_eq!(g.appid.as_deref(), Some("file/app"));
        assert_eq!((s.code_length, s.qr, s.hide_progress), (4, false, true));
        let env = |k: &str| match k {
            ENV_RELAY_URL => Some("ws://env/v1".to_owned()),
            ENV_QR => Some("yes".to_owned()),
            ENV_CODE_LENGTH => Some("5".to_owned()),
            _ => None,
        };
        let Invocation::Send(g, s) = run(&["send", "f"], &env) else {
            panic!()
        };
        assert_eq!(g.relay_url, "ws://env/v1");
        assert_eq!((s.code_length, s.qr), (5, true));
        let Invocation::Send(g, s) = run(
            &["--relay-url", "ws://flag/v1", "send", "-c", "6", "--no-qr", "f"],
            &env,
        ) else {
            panic!()
        };
        assert_eq!(g.relay_url, "ws://flag/v1");
        assert_eq!((s.code_length, s.qr), (6, false));
        let Invocation::Receive(_, r) = run(&["receive", "1-a"], &no_env) else {
            panic!()
        };
        assert!(r.accept_file);
        let Invocation::Ssh(_, SshOptions::Invite { code_length, .. }) = run(&["ssh", "invite"], &no_env)
        else {
            panic!()
        };
        assert_eq!(code_length, 4);
        let Invocation::ShowConfig(shown) = run(&["--show-config"], &env) else {
            panic!()
        };
        assert_eq!(shown.relay_url.source, Source::Env(ENV_RELAY_URL));
        assert_eq!(shown.hide_progress.source, Source::File);
        assert_eq!(shown.transit_helper.source, Source::Default);
        assert!(shown.render().starts_with("# config file: /c.toml\n"));
    }

    #[test]
    fn json_refuses_what_would_prompt() {
        for args in [
            &["--json", "receive"][..],
            &["--json", "send", "--verify", "--text", "x"],
            &["--json", "ssh", "accept", "1-a-b"],
        ] {
            assert!(matches!(parse(args), Err(UsageError::JsonPrompt(_))), "{args:?}");
        }
        assert!(parse(&["--json", "receive", "1-a-b"]).is_ok());
        assert!(parse(&["receive", "--json", "--allocate"]).is_ok());
        assert!(parse(&["--json", "ssh", "accept", "-y", "1-a-b"]).is_ok());
        assert_eq!(parse(&["--appid", "x"]), Err(UsageError::MissingCommand));
    }

    #[test]
    fn accept_file_env() {
        let yes = |k: &str| (k == ENV_ACCEPT_FILE).then(|| "1".to_owned());
        let no = |k: &str| (k == ENV_ACCEPT_FILE).then(|| "no".to_owned());
        let bad = |k: &str| (k == ENV_ACCEPT_FILE).then(|| "maybe".to_owned());
        assert!(receive_env(&["rx", "1-x"], &yes).1.accept_file);
        assert!(!receive_env(&["rx", "1-x"], &no).1.accept_file);
        assert!(receive_env(&["rx", "--accept-file", "1-x"], &no).1.accept_file);
        assert!(!receive_env(&["rx", "1-x"], &no_env).1.accept_file);
        assert!(matches!(
            parse_env(&["rx", "1-x"], &bad),
            Err(UsageError::BadBoolEnv { .. })
        ));
    }

    #[test]
    fn qr_flag_env_default() {
        let off = |k: &str| (k == ENV_QR).then(|| "false".to_owned());
        let get = |args: &[&str], env: &dyn Fn(&str) -> Option<String>| match parse_env(args, env).unwrap() {
            Invocation::Send(_, s) => s.qr,
            _ => unreachable!(),
        };
        assert!(get(&["send", "f"], &no_env));
        assert!(!get(&["send", "f"], &off));
        assert!(get(&["send", "--qr", "f"], &off));
        assert!(!get(&["send", "--no-qr", "f"], &no_env));
        assert!(get(&["send", "--no-qr", "--qr", "f"], &no_env));
        assert!(!get(&["send", "--qr", "--no-qr", "f"], &no_env));
    }

    #[test]
    fn listen_flags() {
        assert!(!send(&["send", "--no-listen", "f"]).1.listen);
        assert!(send(&["send", "--no-listen", "--listen", "f"]).1.listen);
    }

    #[test]
    fn zero_mode_sets_code() {
        let (_, s) = send(&["send", "-0", "--text", "x"]);
        assert_eq!(s.code.as_deref(), Some("0-"));
        assert!(s.zeromode);
        assert_eq!(
            parse(&["send", "-0", "--code", "1-a"]),
            Err(UsageError::ZeroModeWithCode)
        );
        let (_, r) = receive_env(&["receive", "-0"], &no_env);
        assert_eq!(r.code.as_deref(), Some("0-"));
    }

    #[test]
    fn receive_combinations() {
        assert_eq!(
            parse(&["receive", "-a", "1-x"]),
            Err(UsageError::CodeWithAllocate)
        );
        assert_eq!(
            parse(&["receive", "-c", "3"]),
            Err(UsageError::CodeLengthWithoutAllocate)
        );
        let (_, r) = receive_env(&["receive", "-a", "-c", "3"], &no_env);
        assert_eq!(r.code_length, 3);
        assert!(r.allocate);
        let (_, r) = receive_env(&["receive", "-t", "-o", "out", "-v", "--hide-progress"], &no_env);
        assert!(r.only_text && r.verify && r.hide_progress);
        assert_eq!(r.output_file, Some(PathBuf::from("out")));
        assert_eq!(r.code, None);
    }

    #[test]
    fn two_codes_are_a_usage_error() {
        assert!(Cli::try_parse_from(["wormhole", "receive", "1-a", "2-b"]).is_err());
    }

    #[test]
    fn text_and_path_conflict() {
        assert!(Cli::try_parse_from(["wormhole", "send", "--text", "x", "file"]).is_err());
    }

    #[test]
    fn code_length_must_be_positive() {
        assert!(Cli::try_parse_from(["wormhole", "send", "-c", "0", "f"]).is_err());
        assert_eq!(send(&["send", "-c", "4", "f"]).1.code_length, 4);
    }

    fn tor_of(inv: Invocation) -> TorMode {
        match inv {
            Invocation::Send(g, _) | Invocation::Receive(g, _) | Invocation::Ssh(g, _) => g.tor,
            _ => panic!("no global options"),
        }
    }

    #[test]
    fn tor_flags_choose_how_tor_is_found() {
        let tor = |a: &[&str]| tor_of(parse(a).unwrap());
        assert_eq!(tor(&["send", "--text", "x"]), TorMode::Off);
        assert_eq!(
            tor(&["send", "--tor", "--text", "x"]),
            TorMode::Running {
                socks: None,
                control: None
            }
        );
        assert_eq!(
            tor(&["receive", "--tor-control-port", "tcp:127.0.0.1:9051"]),
            TorMode::Running {
                socks: None,
                control: Some("tcp:127.0.0.1:9051".into())
            }
        );
        assert_eq!(
            tor(&["receive", "--tor-socks", "10.0.0.1:1080"]),
            TorMode::Running {
                socks: Some("10.0.0.1:1080".into()),
                control: None
            }
        );
        assert_eq!(
            tor(&["ssh", "invite", "--launch-tor", "--tor-bootstrap-timeout", "5"]),
            TorMode::Launch {
                bootstrap_timeout: std::time::Duration::from_secs(5)
            }
        );
        assert_eq!(
            parse(&["send", "--launch-tor", "--tor-socks", "1.2.3.4:5", "--text", "x"]).err(),
            Some(UsageError::LaunchTorWithPort)
        );
    }

    #[test]
    fn debug_state_is_validated() {
        assert!(parse(&["send", "--debug-state", "B,K", "--text", "x"]).is_ok());
        assert!(parse(&["send", "--text", "x", "--debug-state"]).is_ok());
        assert_eq!(
            parse(&["send", "--debug-state", "B,Q", "--text", "x"]),
            Err(UsageError::UnknownDebugMachines("Q".into()))
        );
    }

    #[test]
    fn ssh_commands() {
        match parse(&["ssh", "accept", "-y", "-F", "k.pub", "3-a-b"]).unwrap() {
            Invocation::Ssh(_, SshOptions::Accept { code, key_file, yes }) => {
                assert_eq!(code, "3-a-b");
                assert_eq!(key_file, Some(PathBuf::from("k.pub")));
                assert!(yes);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["ssh", "invite", "-c", "3", "-u", "bob"]).unwrap() {
            Invocation::Ssh(_, SshOptions::Invite { code_length, user }) => {
                assert_eq!(code_length, 3);
                assert_eq!(user.as_deref(), Some("bob"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_output_names_magic_wormhole() {
        let v = Cli::command().render_version();
        assert!(v.starts_with("magic-wormhole "), "{v}");
    }
}
