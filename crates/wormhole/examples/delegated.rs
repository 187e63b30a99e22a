//! The delegated API mode: one stream of events instead of awaiting each step.
//!
//! Run two copies against a mailbox server:
//! ```text
//! cargo run -p wormhole --example delegated -- ws://127.0.0.1:4000/v1
//! cargo run -p wormhole --example delegated -- ws://127.0.0.1:4000/v1 <code printed by the first>
//! ```

use wormhole::{Event, Wormhole, WormholeError, WormholeOptions};

#[tokio::main]
async fn main() -> Result<(), WormholeError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| wormhole::DEFAULT_MAILBOX_URL.to_owned());
    let code = args.next();
    let (w, mut events) =
        Wormhole::create_delegated("example.com/wormhole-example", &url, WormholeOptions::default());
    match &code {
        Some(c) => w.set_code(c).await?,
        None => w.allocate_code(2).await?,
    }
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Welcome(welcome) => {
                if let Some(motd) = welcome.motd {
                    eprintln!("server says: {motd}");
                }
            }
            Event::Code(code) => println!("code: {code}"),
            Event::Key(_) => println!("key established, waiting for confirmation"),
            Event::Verifier(v) => {
                println!("verifier: {}", hex::encode(v));
                w.send_message(format!("hello from {}", w.side()).into_bytes())
                    .await?;
            }
            Event::Versions(v) => println!("peer versions: {v}"),
            Event::Message(m) => {
                println!("peer says: {}", String::from_utf8_lossy(&m));
                // Close in the background; the Closed event ends the loop.
                let _ = w.close().await;
            }
            Event::Closed(result) => {
                println!("closed: {result:?}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
