//! The awaiting API mode: each step is an `async` call.
//!
//! Run two copies against a mailbox server:
//! ```text
//! cargo run -p wormhole --example awaiting -- ws://127.0.0.1:4000/v1
//! cargo run -p wormhole --example awaiting -- ws://127.0.0.1:4000/v1 <code printed by the first>
//! ```
//! The first allocates a code; the second sets it. Each sends one greeting, prints the
//! other's, and closes.

use wormhole::{Wormhole, WormholeError, WormholeOptions};

#[tokio::main]
async fn main() -> Result<(), WormholeError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| wormhole::DEFAULT_MAILBOX_URL.to_owned());
    let code = args.next();
    let w = Wormhole::create("example.com/wormhole-example", &url, WormholeOptions::default());
    match &code {
        Some(c) => w.set_code(c).await?,
        None => w.allocate_code(2).await?,
    }
    let welcome = w.get_welcome().await?;
    if let Some(motd) = welcome.motd {
        eprintln!("server says: {motd}");
    }
    println!("code: {}", w.get_code().await?);
    let verifier = w.get_verifier().await?;
    println!("verifier: {}", hex::encode(verifier));
    println!("peer versions: {}", w.get_versions().await?);
    w.send_message(format!("hello from {}", w.side()).into_bytes())
        .await?;
    let reply = w.get_message().await?;
    println!("peer says: {}", String::from_utf8_lossy(&reply));
    let mood = w.close().await?;
    println!("closed: {mood}");
    Ok(())
}
