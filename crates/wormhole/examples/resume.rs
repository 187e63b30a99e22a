//! A text exchange that can be stopped and resumed (journal mode, docs/journal.md).
//!
//! ```text
//! cargo run -p wormhole --example resume -- alice.json ws://127.0.0.1:4000/v1
//! cargo run -p wormhole --example resume -- bob.json ws://127.0.0.1:4000/v1 <code>
//! ```
//! Each line typed is sent to the peer. `/stop` (or end of input, or killing the program at any
//! moment) leaves the wormhole open: run the same command again later and it carries on from
//! the state file, even if the peer came and went meanwhile. `/close` ends the wormhole.
//!
//! The state file holds the wormhole's keys: keep it private. It is written after every change
//! (a temporary file, fsync, rename), together with the messages received so far, so a crash
//! never loses or repeats one.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use wormhole::{Checkpoint, Event, Journal, SerializedWormholeWithKeys, Wormhole, WormholeOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn write_atomically(path: &Path, v: &Value) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(v.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The journal: the wormhole's state plus the messages received with it.
fn journal(path: PathBuf, mut received: Vec<Value>) -> Journal {
    Journal::new_sync(move |c: Checkpoint| {
        for e in &c.events {
            if let Event::Message(m) = e {
                received.push(json!(String::from_utf8_lossy(m)));
            }
        }
        match c.state {
            // Parsed back into JSON so the file is one document; it holds keys.
            Some(s) => write_atomically(
                &path,
                &json!({"wormhole": serde_json::from_str::<Value>(&s.to_json())?, "received": received}),
            )?,
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: resume STATE_FILE [URL] [CODE]")?);
    let url = args
        .next()
        .unwrap_or_else(|| wormhole::DEFAULT_MAILBOX_URL.to_owned());
    let code = args.next();
    let (w, mut events) = if path.exists() {
        let saved: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let received = saved["received"].as_array().cloned().unwrap_or_default();
        for m in &received {
            println!("(earlier) peer says: {}", m.as_str().unwrap_or_default());
        }
        let state = SerializedWormholeWithKeys::from_json(&saved["wormhole"].to_string())?;
        let restored = Wormhole::from_serialized(state, Some(journal(path.clone(), received)))?;
        println!("resumed; code: {}", restored.0.get_code().await?);
        restored
    } else {
        let j = journal(path.clone(), Vec::new());
        let created =
            Wormhole::create_journaled("example.com/wormhole-resume", &url, WormholeOptions::default(), j)?;
        match &code {
            Some(c) => created.0.set_code(c).await?,
            None => created.0.allocate_code(2).await?,
        }
        created
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Code(c)) => println!("code: {c}"),
                Some(Event::Verifier(v)) => println!("verifier: {}", hex::encode(v)),
                Some(Event::Message(m)) => println!("peer says: {}", String::from_utf8_lossy(&m)),
                Some(Event::Closed(r)) => {
                    println!("closed: {r:?}");
                    return Ok(());
                }
                Some(_) => {}
                None => return Ok(()),
            },
            line = lines.next_line() => match line?.as_deref() {
                None | Some("/stop") => {
                    w.suspend().await?;
                    println!("stopped; run the same command again to resume");
                    return Ok(());
                }
                Some("/close") => {
                    println!("closed: {:?}", w.close().await);
                    return Ok(());
                }
                Some(text) => w.send_message(text.as_bytes().to_vec()).await?,
            },
        }
    }
}
