//! `wormhole forward`'s command line, in fowl 26.8's words (`--service`, `--client`, an
//! optional code, `--mailbox`, `--code-length`, `--ip-privacy`), so either program can stand on
//! either side; resolved into [`ForwardOptions`].

use clap::Args;
use wormhole::forward::{ClientSpec, ServiceSpec};

use crate::args::TorArgs;

/// `wormhole forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Offer a service that runs on this side; the peer listens for it:
    /// NAME[:PORT][:listen=PORT][:address=ADDR] (fowl's --service; PORT is where the service
    /// listens here, 127.0.0.1 unless address=; listen= asks the peer for that port)
    #[arg(long = "service", short = 'R', visible_alias = "remote", value_name = "SPEC")]
    pub service: Vec<String>,
    /// Allow the peer's service NAME and listen for it here:
    /// NAME[:PORT][:bind=ADDR][:remote-connect=PORT] (fowl's --client; 127.0.0.1 and a free
    /// port unless given)
    #[arg(long = "client", short = 'L', visible_alias = "local", value_name = "SPEC")]
    pub client: Vec<String>,
    /// The code from the other side; without it a code is allocated and shown
    #[arg(value_name = "CODE", conflicts_with = "enter_code")]
    pub code: Option<String>,
    /// Type the code, with Tab completion, instead of allocating one
    #[arg(long)]
    pub enter_code: bool,
    /// length of an allocated code (in words)
    #[arg(short = 'c', long, value_name = "NUMWORDS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub code_length: Option<u16>,
    /// Control by JSON lines, like fowld: commands on stdin (allocate-code, set-code, local,
    /// remote, session-close, ping), messages on stdout (docs/forward.md)
    #[arg(long)]
    pub control: bool,
    /// mailbox server: a ws:// or wss:// URL, or fowl's names default, local or winden (fowl's
    /// spelling of --relay-url)
    #[arg(long, value_name = "URL or NAME")]
    pub mailbox: Option<String>,
    /// use Tor (fowl's spelling of --tor)
    #[arg(long)]
    pub ip_privacy: bool,
    /// (debug) don't listen for direct Dilation connections
    #[arg(long)]
    pub no_listen: bool,
    #[command(flatten)]
    pub tor: TorArgs,
}

/// Resolved `forward` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// `--service` arguments.
    pub services: Vec<ServiceSpec>,
    /// `--client` arguments.
    pub clients: Vec<ClientSpec>,
    /// The code, if given.
    pub code: Option<String>,
    /// Type the code.
    pub enter_code: bool,
    /// Words of an allocated code.
    pub code_length: usize,
    /// JSON-lines control on stdin/stdout.
    pub control: bool,
    /// JSON messages on stdout (`--control` or the global `--json`).
    pub json: bool,
    /// Listen for direct Dilation connections.
    pub listen: bool,
}

/// fowl's well-known mailbox names.
pub fn mailbox_url(arg: &str) -> String {
    match arg {
        "default" => crate::args::DEFAULT_RELAY_URL.to_owned(),
        "local" => "ws://localhost:4000/v1".to_owned(),
        "winden" => "wss://mailbox.mw.leastauthority.com/v1".to_owned(),
        url => url.to_owned(),
    }
}

impl ForwardArgs {
    /// The options, or the first argument that does not parse.
    pub fn resolve(&self, code_length: usize, json: bool) -> Result<ForwardOptions, String> {
        let services = self
            .service
            .iter()
            .map(|s| ServiceSpec::parse(s).map_err(|e| format!("--service {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let clients = self
            .client
            .iter()
            .map(|s| ClientSpec::parse(s).map_err(|e| format!("--client {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if services.is_empty() && clients.is_empty() && !self.control {
            return Err(
                "give at least one --service or --client (or --control to take them as JSON commands)".into(),
            );
        }
        wormhole::forward::Policy::new(services.clone(), clients.clone()).map_err(|e| e.to_string())?;
        if json && !self.control && self.code.is_none() && self.enter_code {
            return Err("--json cannot answer questions: --enter-code types the code".into());
        }
        Ok(ForwardOptions {
            services,
            clients,
            code: self.code.clone(),
            enter_code: self.enter_code,
            code_length,
            control: self.control,
            json: json || self.control,
            listen: !self.no_listen,
        })
    }
}
