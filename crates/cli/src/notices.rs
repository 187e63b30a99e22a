//! The wormhole-level steps every flow shares, as the user sees them: the server's welcome
//! (message of the day, version warning) and the "still waiting" notices.
//!
//! Printing only; the wormhole is the library's `wormhole::Wormhole`, used directly.

use std::future::Future;
use std::time::Duration;

use wormhole::Welcome;

/// Await `fut`; if it takes longer than `after`, print `notice` on stderr once and keep waiting
/// (Python's "Waiting for sender..." and "Key established, waiting for confirmation...").
pub async fn with_notice<F: Future>(fut: F, after: Duration, notice: &str) -> F::Output {
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => return r,
        () = tokio::time::sleep(after) => eprintln!("{notice}"),
    }
    fut.await
}

/// Print the welcome's message of the day and version warning like Python's `handle_welcome`
/// (and emit the `welcome` event in JSON mode).
pub fn show_welcome(welcome: &Welcome, relay_url: &str, own_version: &str) {
    crate::json::emit(&crate::json::Event::Welcome {
        motd: welcome.motd.clone(),
        current_cli_version: welcome.current_cli_version.clone(),
    });
    if let Some(motd) = &welcome.motd {
        let lines: Vec<&str> = motd.lines().collect();
        eprintln!("Server (at {relay_url}) says:\n {}", lines.join("\n "));
    }
    if welcome.version_mismatch(own_version)
        && let Some(current) = &welcome.current_cli_version
    {
        eprintln!("Warning: errors may occur unless both sides are running the same version");
        eprintln!("Server claims {current} is current, but ours is {own_version}");
    }
}
