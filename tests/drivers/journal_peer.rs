//! `journal-peer`: one side of a text exchange in journal mode (docs/journal.md), for the
//! offline and crash tests. Every checkpoint is written atomically to `--state` together with
//! the messages received so far; on start it restores from that file when it holds a wormhole.
//!
//! Usage: `journal-peer --state FILE --url URL (--allocate | --code CODE) --prefix P --send N
//! --expect M [--stop-after code|key|verified|received:K] [--crash before:K|after:K]
//! [--appid APPID] [--text T]`
//!
//! It sends `P0`..`P{N-1}` (those its state has not sent yet; with `--text`, the one message a
//! file-transfer sender of text sends, `{"offer": {"message": T}}`, so a real CLI can receive it), and closes once it has received
//! `M` messages and the server echoed everything it sent. `--stop-after` suspends instead (exit
//! 0 without closing) once the condition holds and everything sent was echoed. `--crash` makes
//! the process SIGKILL itself at the K-th checkpoint of this run, before or after writing it.
//! Prints JSON lines: `{"code":..}`, `{"received":..}` (each new message), `{"suspended":true}`,
//! `{"closed":"happy"}` or `{"error":..}`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::watch;
use wormhole::{
    Checkpoint, Event, Journal, MachineStateWithKeys, SerializedWormholeWithKeys, Wormhole, WormholeError,
    WormholeOptions,
};

const APPID: &str = "lothar.com/wormhole/interop-journal-test";

#[derive(Debug, Clone, Default)]
struct Args {
    state: PathBuf,
    url: String,
    allocate: bool,
    code: Option<String>,
    prefix: String,
    send: u64,
    expect: u64,
    stop_after: Option<String>,
    crash: Option<(bool, u64)>,
    appid: Option<String>,
    text: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--state" => a.state = val()?.into(),
            "--url" => a.url = val()?,
            "--allocate" => a.allocate = true,
            "--code" => a.code = Some(val()?),
            "--prefix" => a.prefix = val()?,
            "--send" => a.send = val()?.parse()?,
            "--expect" => a.expect = val()?.parse()?,
            "--stop-after" => a.stop_after = Some(val()?),
            "--appid" => a.appid = Some(val()?),
            "--text" => {
                a.text = Some(val()?);
                a.send = 1;
            }
            "--crash" => {
                let v = val()?;
                let (when, n) = v.split_once(':').context("--crash before:K or after:K")?;
                a.crash = Some((when == "after", n.parse()?));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// The application's journal file: the wormhole and what the application saw with it.
#[derive(Debug, Clone, Default)]
struct Saved {
    wormhole: Option<Value>,
    received: Vec<String>,
    code: Option<String>,
    closed: Option<String>,
}

impl Saved {
    fn load(path: &Path) -> Result<Saved> {
        if !path.exists() {
            return Ok(Saved::default());
        }
        let v: Value = serde_json::from_slice(&std::fs::read(path)?)?;
        Ok(Saved {
            wormhole: v.get("wormhole").filter(|w| !w.is_null()).cloned(),
            received: serde_json::from_value(v["received"].clone())?,
            code: v["code"].as_str().map(str::to_owned),
            closed: v["closed"].as_str().map(str::to_owned),
        })
    }

    /// Write to a temporary file, fsync, rename: the file is always one whole checkpoint.
    fn store(&self, path: &Path) -> std::io::Result<()> {
        let v = json!({
            "wormhole": self.wormhole,
            "received": self.received,
            "code": self.code,
            "closed": self.closed,
        });
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(v.to_string().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}

/// What the main task watches: the last checkpointed machine state (None once closed).
type Latest = watch::Sender<Option<MachineStateWithKeys>>;

fn sigkill_self() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::park();
    }
}

fn emit(v: Value) {
    println!("{v}");
}

fn journal(args: &Args, saved: Arc<Mutex<Saved>>, latest: Latest) -> Journal {
    let path = args.state.clone();
    let crash = args.crash;
    let mut n = 0u64;
    Journal::new_sync(move |c: Checkpoint| {
        n += 1;
        if crash == Some((false, n)) {
            sigkill_self();
        }
        let mut s = saved.lock().map_err(|_| "poisoned")?;
        s.wormhole = match &c.state {
            Some(st) => Some(serde_json::from_str(&st.to_json())?),
            None => None,
        };
        for e in &c.events {
            match e {
                Event::Message(m) => s.received.push(String::from_utf8_lossy(m).into_owned()),
                Event::Code(code) => s.code = Some(code.clone()),
                Event::Closed(r) => {
                    s.closed = Some(match r {
                        Ok(m) => m.to_string(),
                        Err(e) => format!("error: {e}"),
                    })
                }
                _ => {}
            }
        }
        s.store(&path)?;
        drop(s);
        if crash == Some((true, n)) {
            sigkill_self();
        }
        let _ = latest.send(c.state.map(|s| s.machine().clone()));
        Ok(())
    })
}

fn stop_condition(cond: &str, m: &MachineStateWithKeys) -> bool {
    if m.unechoed() > 0 {
        return false;
    }
    match cond.split_once(':') {
        Some(("received", k)) => k.parse().is_ok_and(|k: u64| m.messages_received() >= k),
        _ => match cond {
            "code" => m.code().is_some(),
            "key" => m.has_key(),
            "verified" => m.is_verified(),
            _ => false,
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let saved0 = Saved::load(&args.state)?;
    if let Some(c) = &saved0.closed {
        emit(json!({"closed": c}));
        return Ok(());
    }
    let saved = Arc::new(Mutex::new(saved0.clone()));
    let (latest_tx, mut latest) = watch::channel(None);
    let j = journal(&args, saved.clone(), latest_tx.clone());
    let (w, mut events) = match &saved0.wormhole {
        Some(v) => {
            let state = SerializedWormholeWithKeys::from_json(&v.to_string())?;
            let _ = latest_tx.send(Some(state.machine().clone()));
            Wormhole::from_serialized(state, Some(j))?
        }
        None => {
            let opts = WormholeOptions {
                versions: json!({"journal-peer": args.prefix}),
                ..WormholeOptions::default()
            };
            let appid = args.appid.as_deref().unwrap_or(APPID);
            Wormhole::create_journaled(appid, &args.url, opts, j)?
        }
    };
    for (i, m) in saved0.received.iter().enumerate() {
        emit(json!({"received": m, "index": i, "earlier": true}));
    }
    let machine = latest.borrow().clone();
    let code_known = machine.as_ref().and_then(|m| m.code().map(str::to_owned));
    if code_known.is_none() {
        let r = match (&args.code, args.allocate) {
            (Some(c), _) => w.set_code(c).await,
            (None, true) => w.allocate_code(2).await,
            (None, false) => bail!("--code or --allocate"),
        };
        match r {
            Ok(()) | Err(WormholeError::OnlyOneCode) => {}
            Err(e) => bail!("cannot start: {e}"),
        }
    }
    let sent = latest.borrow().as_ref().map_or(0, |m| m.messages_sent());
    for i in sent..args.send {
        let m = match &args.text {
            Some(t) => json!({"offer": {"message": t}}).to_string(),
            None => format!("{}{i}", args.prefix),
        };
        w.send_message(m.into_bytes()).await?;
    }
    let mut code_printed = false;
    let mut closing = false;
    loop {
        // Cloned out first: the watch's read guard must not live across an await.
        let current = latest.borrow_and_update().clone();
        if let Some(m) = current {
            if !code_printed && let Some(c) = m.code() {
                emit(json!({"code": c}));
                code_printed = true;
            }
            if let Some(cond) = &args.stop_after
                && stop_condition(cond, &m)
            {
                w.suspend().await?;
                emit(json!({"suspended": true}));
                return Ok(());
            }
            let done = m.messages_received() >= args.expect && m.messages_sent() >= args.send;
            if !closing && (m.is_closing() || (done && m.unechoed() == 0)) {
                closing = true;
                let _ = w.close().await;
            }
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Message(m)) => emit(json!({"received": String::from_utf8_lossy(&m)})),
                Some(Event::Closed(r)) => {
                    match r {
                        Ok(mood) => emit(json!({"closed": mood.to_string()})),
                        Err(e) => {
                            emit(json!({"error": e.to_string()}));
                            std::process::exit(3);
                        }
                    }
                    return Ok(());
                }
                Some(_) => {}
                None => bail!("event stream ended"),
            },
            r = latest.changed() => r?,
        }
    }
}
