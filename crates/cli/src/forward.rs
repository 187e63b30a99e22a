//! `wormhole forward`: TCP port forwarding over a dilated wormhole, with fowl's protocol, so
//! `fowl` or `fowld` may be the other side (docs/forward.md). The engine is
//! `wormhole::forward`'s; here are the code, the status lines on stderr, fowld's JSON messages
//! (`--control`, `--json`) and fowl's way of ending a session: each side sends a
//! `{"closing": N}` mailbox message and waits for the other's before closing the wormhole.
//!
//! Owns: the session's user-facing flow. Must not: touch forwarded bytes.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wormhole::dilation::{Dilated, DilationOptions};
use wormhole::forward::{
    ForwardEvent, Forwarder, ForwarderOptions, Policy, peer_half_closes, peer_speaks_fowl,
};
use wormhole::{Wormhole, WormholeOptions};

use crate::args::GlobalOptions;
use crate::forward_args::ForwardOptions;
use crate::forward_control::{Command, event_message};
use crate::interrupt::Run;
use crate::json::Summary;

/// How long an interrupted session waits for the peer's `closing` before it closes anyway.
pub const CLOSE_WAIT_ON_SIGNAL: Duration = Duration::from_secs(2);

/// The wormhole options of a forward session: fowl's `app_versions`, Dilation on.
pub fn wormhole_options() -> WormholeOptions {
    WormholeOptions {
        versions: wormhole::forward::our_versions(),
        dilation: true,
        ..WormholeOptions::default()
    }
}

/// fowl's end-of-session mailbox message.
pub fn closing_message() -> Vec<u8> {
    // The phase this message goes out on: it is our first (and only) application message.
    json!({ "closing": 0 }).to_string().into_bytes()
}

/// Whether a mailbox message from the peer is its `closing`.
pub fn is_closing(message: &[u8]) -> bool {
    serde_json::from_slice::<Value>(message).is_ok_and(|v| v.get("closing").is_some())
}

/// Where status goes: lines on stderr always, fowld messages on stdout with `--json`.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn say(&self, line: &str) {
        eprintln!("{line}");
    }

    fn msg(&self, v: Value) {
        if self.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{v}").and_then(|()| o.flush());
        }
    }
}

/// The status line for an event (`None`: not worth a line, e.g. byte counts).
fn human(e: &ForwardEvent) -> Option<String> {
    Some(match e {
        ForwardEvent::Listening { name, port } => {
            format!("Service \"{name}\": listening on port {port} here; connections go to the peer's service")
        }
        ForwardEvent::AwaitingConnect { name, port } => {
            format!("Service \"{name}\": the peer listens for it; its connections come to port {port} here")
        }
        ForwardEvent::ListeningFailed { name, reason } => format!("Service \"{name}\" failed: {reason}"),
        ForwardEvent::OutgoingConnection { name, id } => {
            format!("#{id} \"{name}\": new local connection, opening it at the peer")
        }
        ForwardEvent::IncomingConnection { name, id } => {
            format!("#{id} \"{name}\": new connection from the peer")
        }
        ForwardEvent::RemoteConnectFailed { id, reason } => {
            format!("#{id}: the peer could not connect: {reason}")
        }
        ForwardEvent::Bytes { .. } => return None,
        ForwardEvent::Closed {
            id,
            name,
            bytes_in,
            bytes_out,
            error,
            ..
        } => {
            let counts = format!("{bytes_in} bytes to the peer, {bytes_out} bytes from it");
            match error {
                None => format!("#{id} \"{name}\": closed ({counts})"),
                Some(e) => format!("#{id} \"{name}\": ended: {e} ({counts})"),
            }
        }
        ForwardEvent::Error { message } => format!("Warning: {message}"),
    })
}

/// Lines of stdin, read on a thread (`None` at end of input).
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_line(lines: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match lines {
        Some(rx) => match rx.recv().await {
            Some(l) => Some(l),
            None => {
                *lines = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Set the code from the argument, the keyboard, a control command, or allocate one; true if
/// allocated. Control commands that come first add to `policy`.
async fn establish_code(
    w: &Wormhole,
    opts: &ForwardOptions,
    lines: &mut Option<mpsc::UnboundedReceiver<String>>,
    policy: &mut Policy,
    out: &Out,
) -> Result<bool> {
    if let Some(code) = &opts.code {
        w.set_code(code).await?;
        return Ok(false);
    }
    if opts.enter_code {
        crate::real::input_code(w).await?;
        return Ok(false);
    }
    if !opts.control {
        w.allocate_code(opts.code_length).await?;
        return Ok(true);
    }
    loop {
        let Some(line) = next_line(lines).await else {
            anyhow::bail!("standard input ended before an allocate-code or set-code command");
        };
        match Command::parse(&line) {
            Ok(Command::AllocateCode(n)) => {
                w.allocate_code(n.unwrap_or(opts.code_length)).await?;
                return Ok(true);
            }
            Ok(Command::SetCode(code)) => {
                w.set_code(&code).await?;
                return Ok(false);
            }
            Ok(Command::Local(c)) => report(out, policy.allow(c).map_err(|e| e.to_string())),
            Ok(Command::Remote(s)) => report(out, policy.add_service(s).map_err(|e| e.to_string())),
            Ok(other) => report(out, Err(format!("{other:?} needs a code first"))),
            Err(e) => report(out, Err(format!("{}: failed: {e}", line.trim()))),
        }
    }
}

fn report(out: &Out, r: Result<(), String>) {
    if let Err(message) = r {
        out.say(&format!("Warning: {message}"));
        out.msg(json!({"kind": "error", "message": message}));
    }
}

/// How the session ended.
enum End {
    /// The peer sent its `closing` (we answer with ours).
    PeerClosed,
    /// We were asked to close (`session-close`): send ours, wait this long for the peer's.
    Ours(Duration),
}

/// The whole session.
pub async fn run(w: &Wormhole, global: &GlobalOptions, opts: ForwardOptions, state: &Run) -> Result<Summary> {
    let out = Out { json: opts.json };
    let mut policy = Policy::new(opts.services.clone(), opts.clients.clone())?;
    let mut lines = opts.control.then(stdin_lines);
    let welcome = w.get_welcome().await?;
    crate::notices::show_welcome(&welcome, &global.relay_url, env!("CARGO_PKG_VERSION"));
    out.msg(json!({"kind": "welcome", "url": global.relay_url, "welcome": welcome.raw}));
    let allocated = establish_code(w, &opts, &mut lines, &mut policy, &out).await?;
    let code = w.get_code().await?;
    out.msg(json!({"kind": "code-allocated", "code": code}));
    if allocated {
        out.say(&format!("Wormhole code is: {code}"));
        out.say(&format!(
            "On the other computer, please run: {}",
            peer_hint(&opts, &code)
        ));
    }
    let verifier = w.get_verifier().await?;
    let versions = w.get_versions().await?;
    if !peer_speaks_fowl(&versions) {
        out.say(
            "Warning: the peer does not say it speaks fowl's forwarding protocol (core-v1); trying anyway",
        );
    }
    let dilated = Arc::new(
        w.dilate(DilationOptions {
            relays: vec![global.transit_helper.clone()],
            no_listen: !opts.listen,
            ..DilationOptions::default()
        })
        .await?,
    );
    let (tx, mut events) = mpsc::unbounded_channel();
    let options = ForwarderOptions {
        byte_events: opts.json,
        peer_half_close: peer_half_closes(&versions),
    };
    let fwd = Forwarder::start(dilated.clone(), policy, options, tx).await?;
    dilated
        .when_dilated()
        .await
        .context("connecting to the peer (Dilation)")?;
    state.set_forwarding(true);
    out.say(&format!(
        "Connected to the peer (verifier {}).",
        hex::encode(verifier)
    ));
    out.msg(json!({"kind": "peer-connected", "verifier": hex::encode(verifier), "versions": versions}));
    fwd.request_services();
    let end = serve(w, &dilated, &fwd, &mut events, &mut lines, &out).await?;
    close_session(w, &fwd, end, &out).await?;
    Ok(Summary::default())
}

/// How long fowld's `ping` waits for the peer's PONG.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// fowld's `ping`: a Dilation PING; `pong` with the round trip in seconds, or an error.
fn ping(dilated: Arc<Dilated>, ping_id: Value, out: Out) {
    tokio::spawn(async move {
        match tokio::time::timeout(PING_TIMEOUT, dilated.ping()).await {
            Ok(Ok(rtt)) => out.msg(json!({
                "kind": "pong",
                "ping_id": ping_id,
                "time_of_flight": rtt.as_secs_f64(),
            })),
            Ok(Err(e)) => report(&out, Err(format!("ping: {e}"))),
            Err(_) => report(
                &out,
                Err(format!("ping: no answer within {} s", PING_TIMEOUT.as_secs())),
            ),
        }
    });
}

/// The suggested command for the other side.
fn peer_hint(opts: &ForwardOptions, code: &str) -> String {
    let mut parts = vec!["wormhole forward".to_owned()];
    for s in &opts.services {
        parts.push(format!("--client {}", s.name));
    }
    for c in &opts.clients {
        parts.push(format!("--service {}:PORT", c.name));
    }
    parts.push(code.to_owned());
    parts.join(" ")
}

/// Forward until the peer or a command ends the session.
async fn serve(
    w: &Wormhole,
    dilated: &Arc<Dilated>,
    fwd: &Forwarder,
    events: &mut mpsc::UnboundedReceiver<ForwardEvent>,
    lines: &mut Option<mpsc::UnboundedReceiver<String>>,
    out: &Out,
) -> Result<End> {
    let mut status = dilated.watch_status();
    let mut connected = true;
    let mut message = Box::pin(w.get_message());
    loop {
        tokio::select! {
            Some(e) = events.recv() => {
                if let Some(line) = human(&e) {
                    out.say(&line);
                }
                out.msg(event_message(&e));
            }
            m = &mut message => {
                let m = m.context("waiting for the peer's messages")?;
                if is_closing(&m) {
                    out.say("The peer closed the session.");
                    return Ok(End::PeerClosed);
                }
                message = Box::pin(w.get_message());
            }
            Some(line) = next_line(lines) => match Command::parse(&line) {
                Ok(Command::Local(c)) => report(out, fwd.allow(c).map_err(|e| e.to_string())),
                Ok(Command::Remote(s)) => report(out, fwd.add_service(s).map_err(|e| e.to_string())),
                Ok(Command::SessionClose(t)) => return Ok(End::Ours(Duration::from_secs(t))),
                Ok(Command::Ping(id)) => ping(dilated.clone(), id, *out),
                Ok(Command::AllocateCode(_) | Command::SetCode(_)) => {
                    report(out, Err("the code is already set".into()));
                }
                Err(e) => report(out, Err(format!("{}: failed: {e}", line.trim()))),
            },
            r = status.changed() => {
                if r.is_err() {
                    anyhow::bail!("Dilation ended");
                }
                let s = status.borrow_and_update().clone();
                if let Some(Err(e)) = s.ended {
                    return Err(e).context("the connection to the peer ended");
                }
                if s.connected != connected {
                    connected = s.connected;
                    out.say(if connected {
                        "Reconnected to the peer."
                    } else {
                        "Connection to the peer lost; reconnecting (forwarded connections wait)..."
                    });
                }
            }
        }
    }
}

/// fowl's close: both `closing` messages, then the wormhole closes (the caller closes it).
async fn close_session(w: &Wormhole, fwd: &Forwarder, end: End, out: &Out) -> Result<()> {
    fwd.stop();
    w.send_message(closing_message()).await?;
    if let End::Ours(timeout) = end {
        if !wait_for_closing(w, timeout).await {
            anyhow::bail!(
                "the peer did not answer our closing message within {} s",
                timeout.as_secs()
            );
        }
        out.say("The peer acknowledged the end of the session.");
    }
    Ok(())
}

/// Wait (at most `timeout`) for the peer's `closing`; false if it did not come.
pub async fn wait_for_closing(w: &Wormhole, timeout: Duration) -> bool {
    let wait = async {
        loop {
            match w.get_message().await {
                Ok(m) if is_closing(&m) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_messages() {
        assert!(is_closing(&closing_message()));
        assert!(is_closing(br#"{"closing": 3}"#));
        assert!(!is_closing(b"{}"));
        assert!(!is_closing(b"not json"));
    }
}
