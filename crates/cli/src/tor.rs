//! Tor for the CLI, with the Python CLI's flags: `--tor` (a running Tor: its SOCKS port at
//! 127.0.0.1:9050, or Tor Browser's 9150), `--tor-control-port ENDPOINT` (ask that control port
//! where the SOCKS port is), `--launch-tor` (start a `tor` of our own, wait until it has
//! bootstrapped, stop it at exit). Plus ours: `--tor-socks HOST:PORT` names the SOCKS port, and
//! `--tor-bootstrap-timeout` bounds the wait of `--launch-tor`.
//!
//! Owns: finding or starting Tor and handing back the [`Dialer`] every connection then uses.
//! Must not: make any connection of the wormhole itself (the library does, through the dialer).

pub mod control;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wormhole::net::Dialer;

/// How the user asked for Tor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TorMode {
    /// No Tor.
    #[default]
    Off,
    /// A running Tor: its SOCKS port given, found through its control port, or the defaults.
    Running {
        /// `--tor-socks`.
        socks: Option<String>,
        /// `--tor-control-port`.
        control: Option<String>,
    },
    /// `--launch-tor`.
    Launch {
        /// `--tor-bootstrap-timeout`.
        bootstrap_timeout: Duration,
    },
}

/// The SOCKS ports tried when none is named: Tor's, then Tor Browser's.
const DEFAULT_SOCKS: [&str; 2] = ["127.0.0.1:9050", "127.0.0.1:9150"];
/// One control-port exchange may take this long.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// A launched Tor must write its control port file within this long.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A Tor we launched: stopped (killed and reaped) when this is dropped. Tor also stops by itself
/// when our control connection closes (`TAKEOWNERSHIP`), so it cannot outlive a killed `wormhole`.
pub struct LaunchedTor {
    child: tokio::process::Child,
    _control: Control,
    _dir: tempfile::TempDir,
}

impl LaunchedTor {
    /// Stop Tor and wait for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Find (or start) Tor for `mode`: the dialer to use, and the launched Tor to keep alive.
pub async fn start(mode: &TorMode) -> Result<(Dialer, Option<LaunchedTor>)> {
    match mode {
        TorMode::Off => Ok((Dialer::Direct, None)),
        TorMode::Running { socks: Some(s), .. } => Ok((Dialer::Socks5 { proxy: s.clone() }, None)),
        TorMode::Running {
            socks: None,
            control: Some(endpoint),
        } => {
            let mut c = Control::open(endpoint).await?;
            c.authenticate().await?;
            let socks = c.socks_listener().await?;
            eprintln!("Using Tor's SOCKS port {socks} (from its control port {endpoint}).");
            Ok((Dialer::Socks5 { proxy: socks }, None))
        }
        TorMode::Running {
            socks: None,
            control: None,
        } => {
            for addr in DEFAULT_SOCKS {
                let probe =
                    tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr));
                if let Ok(Ok(_)) = probe.await {
                    eprintln!("Using Tor's SOCKS port {addr}.");
                    return Ok((Dialer::Socks5 { proxy: addr.into() }, None));
                }
            }
            bail!(
                "--tor: no Tor SOCKS port at {} or {}; start Tor, name its port with --tor-socks or its \
                 control port with --tor-control-port, or use --launch-tor",
                DEFAULT_SOCKS[0],
                DEFAULT_SOCKS[1]
            )
        }
        TorMode::Launch { bootstrap_timeout } => launch(*bootstrap_timeout).await,
    }
}

async fn launch(bootstrap_timeout: Duration) -> Result<(Dialer, Option<LaunchedTor>)> {
    let dir = tempfile::Builder::new()
        .prefix("wormhole-tor-")
        .tempdir()
        .context("--launch-tor: cannot create Tor's data directory")?;
    let port_file = dir.path().join("control.port");
    let mut cmd = tokio::process::Command::new("tor");
    cmd.arg("--ignore-missing-torrc")
        .arg("-f")
        .arg(dir.path().join("torrc"))
        .arg("--defaults-torrc")
        .arg(dir.path().join("torrc-defaults"))
        .arg("--DataDirectory")
        .arg(dir.path())
        .args(["--SocksPort", "127.0.0.1:auto", "--ControlPort", "127.0.0.1:auto"])
        .arg("--ControlPortWriteToFile")
        .arg(&port_file)
        .args(["--CookieAuthentication", "1"])
        .arg("--CookieAuthFile")
        .arg(dir.path().join("control.cookie"))
        .args(["--__OwningControllerProcess", &std::process::id().to_string()])
        .arg("--Log")
        .arg(format!("notice file {}", dir.path().join("tor.log").display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow!("--launch-tor: the `tor` program is not installed (on Debian: apt-get install tor)")
        }
        _ => anyhow!("--launch-tor: cannot start tor: {e}"),
    })?;
    eprintln!(
        "Launched Tor (pid {}); waiting for it to start...",
        child.id().unwrap_or(0)
    );
    let endpoint = match wait_for_port_file(&port_file, &mut child).await {
        Ok(e) => e,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e.context(tor_log_tail(dir.path())));
        }
    };
    let mut control = Control::open(&endpoint).await?;
    control.authenticate().await?;
    control.command("TAKEOWNERSHIP").await?;
    let socks = control.socks_listener().await?;
    if let Err(e) = wait_bootstrapped(&mut control, bootstrap_timeout).await {
        let _ = child.kill().await;
        return Err(e);
    }
    eprintln!("Tor is ready (SOCKS port {socks}).");
    let launched = LaunchedTor {
        child,
        _control: control,
        _dir: dir,
    };
    Ok((Dialer::Socks5 { proxy: socks }, Some(launched)))
}

/// Wait until Tor wrote `PORT=HOST:PORT` into `file` (or died).
async fn wait_for_port_file(file: &Path, child: &mut tokio::process::Child) -> Result<String> {
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        if let Ok(text) = tokio::fs::read_to_string(file).await
            && let Some(addr) = text.lines().find_map(|l| l.strip_prefix("PORT="))
        {
            return Ok(addr.trim().to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("--launch-tor: tor exited at start ({status})");
        }
        if Instant::now() > deadline {
            bail!("--launch-tor: tor did not open its control port within {LAUNCH_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `status/bootstrap-phase` until 100 %, printing each new step.
async fn wait_bootstrapped(control: &mut Control, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut shown = None;
    loop {
        let lines = control.command("GETINFO status/bootstrap-phase").await?;
        let b = control::bootstrap(&lines).map_err(|e| anyhow!("Tor's control port: {e}"))?;
        if shown != Some(b.progress) {
            eprintln!("Tor bootstrapping: {}% ({})", b.progress, b.summary);
            shown = Some(b.progress);
        }
        if b.progress >= 100 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let last = b;
            let why = last
                .warning
                .map(|w| format!("; Tor says: {w}"))
                .unwrap_or_default();
            bail!(
                "--launch-tor: Tor could not bootstrap within {} s (stuck at {}%: {}{why}); is this \
                 machine connected to the internet? Tor has been stopped",
                limit.as_secs(),
                last.progress,
                last.summary
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn tor_log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("tor.log")).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    match tail.is_empty() {
        true => "tor wrote no log".to_owned(),
        false => format!(
            "tor's last log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to Tor's control port.
struct Control {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    endpoint: String,
}

/// A control endpoint: `tcp:HOST:PORT`, `tcp:host=HOST:port=PORT`, `unix:PATH`, `HOST:PORT`,
/// or a bare port on 127.0.0.1.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
}

fn parse_endpoint(s: &str) -> Result<Endpoint> {
    if let Some(path) = s.strip_prefix("unix:") {
        let path = path.strip_prefix("path=").unwrap_or(path);
        return Ok(Endpoint::Unix(path.into()));
    }
    let rest = s.strip_prefix("tcp:").unwrap_or(s);
    if let Ok(port) = rest.parse::<u16>() {
        return Ok(Endpoint::Tcp(format!("127.0.0.1:{port}")));
    }
    let (mut host, mut port) = (None, None);
    for part in rest.split(':') {
        if let Some(h) = part.strip_prefix("host=") {
            host = Some(h.to_owned());
        } else if let Some(p) = part.strip_prefix("port=") {
            port = p.parse::<u16>().ok();
        }
    }
    if let (Some(h), Some(p)) = (host, port) {
        return Ok(Endpoint::Tcp(format!("{h}:{p}")));
    }
    match rest.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.is_empty() => Ok(Endpoint::Tcp(rest.to_owned())),
        _ => bail!("--tor-control-port {s:?}: expected tcp:HOST:PORT, unix:PATH or a port number"),
    }
}

impl Control {
    async fn open(endpoint: &str) -> Result<Control> {
        let what = || format!("cannot reach Tor's control port {endpoint}");
        let stream: Box<dyn Io> = match parse_endpoint(endpoint)? {
            Endpoint::Tcp(a) => Box::new(
                tokio::time::timeout(CONTROL_TIMEOUT, tokio::net::TcpStream::connect(a))
                    .await
                    .map_err(|_| anyhow!("no answer within {CONTROL_TIMEOUT:?}"))
                    .with_context(what)?
                    .with_context(what)?,
            ),
            Endpoint::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await.with_context(what)?),
        };
        Ok(Control {
            stream,
            buf: Vec::new(),
            endpoint: endpoint.to_owned(),
        })
    }

    /// Send one command, return the lines of its `250` reply.
    async fn command(&mut self, cmd: &str) -> Result<Vec<String>> {
        let endpoint = self.endpoint.clone();
        let exchange = async {
            self.stream.write_all(format!("{cmd}\r\n").as_bytes()).await?;
            loop {
                if let Some(n) = control::reply_len(&self.buf)? {
                    let reply: Vec<u8> = self.buf.drain(..n).collect();
                    return Ok::<_, anyhow::Error>(control::lines(&reply)?);
                }
                let mut chunk = [0u8; 1024];
                let n = self.stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("the control connection closed");
                }
                self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        };
        let verb = cmd.split(' ').next().unwrap_or(cmd);
        tokio::time::timeout(CONTROL_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no answer within {CONTROL_TIMEOUT:?}"))
            .and_then(|r| r)
            .with_context(|| format!("Tor's control port {endpoint}: {verb}"))
    }

    /// `PROTOCOLINFO`, then `AUTHENTICATE` with no secret or with the cookie.
    async fn authenticate(&mut self) -> Result<()> {
        let lines = self.command("PROTOCOLINFO 1").await?;
        let info = control::auth_info(&lines).map_err(|e| anyhow!("Tor's control port: {e}"))?;
        if info.methods.iter().any(|m| m == "NULL") {
            self.command("AUTHENTICATE").await?;
            return Ok(());
        }
        if info.methods.iter().any(|m| m == "COOKIE")
            && let Some(file) = &info.cookie_file
        {
            let cookie = read_cookie(Path::new(file)).await?;
            self.command(&format!("AUTHENTICATE {}", hex::encode(cookie)))
                .await?;
            return Ok(());
        }
        bail!(
            "Tor's control port {} offers only {} authentication; we support NULL and COOKIE",
            self.endpoint,
            info.methods.join(", ")
        )
    }

    async fn socks_listener(&mut self) -> Result<String> {
        let lines = self.command("GETINFO net/listeners/socks").await?;
        control::socks_listener(&lines).map_err(|e| anyhow!("Tor's control port {}: {e}", self.endpoint))
    }
}

/// Tor's cookie is 32 bytes; anything much larger is not a cookie.
async fn read_cookie(path: &Path) -> Result<Vec<u8>> {
    let meta = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("Tor's cookie file {}", path.display()))?;
    if meta.len() > 1024 {
        bail!(
            "Tor's cookie file {} is {} bytes, not a cookie",
            path.display(),
            meta.len()
        );
    }
    tokio::fs::read(path)
        .await
        .with_context(|| format!("Tor's cookie file {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_endpoints_in_every_spelling() {
        let tcp = |s: &str| Endpoint::Tcp(s.to_owned());
        assert_eq!(
            parse_endpoint("tcp:127.0.0.1:9051").unwrap(),
            tcp("127.0.0.1:9051")
        );
        assert_eq!(
            parse_endpoint("tcp:host=localhost:port=9151").unwrap(),
            tcp("localhost:9151")
        );
        assert_eq!(parse_endpoint("9051").unwrap(), tcp("127.0.0.1:9051"));
        assert_eq!(parse_endpoint("10.0.0.1:9051").unwrap(), tcp("10.0.0.1:9051"));
        assert_eq!(
            parse_endpoint("unix:/run/tor/control").unwrap(),
            Endpoint::Unix("/run/tor/control".into())
        );
        assert!(parse_endpoint("tcp:nowhere").is_err());
    }
}
