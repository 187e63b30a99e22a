//! Small user-facing formatting helpers: sizes like Python's `humanize.naturalsize`, the QR code
//! of the `wormhole-transfer:` URI, progress bars, and yes/no prompts on the terminal.
//!
//! Everything here writes to stderr (or returns strings); stdout is reserved for received text.

use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Format a byte count the way `humanize.naturalsize` does (decimal units, one decimal):
/// `1 Byte`, `12 Bytes`, `1.5 kB`, `3.0 MB`.
pub fn naturalsize(bytes: u64) -> String {
    const UNITS: [&str; 8] = ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    if bytes == 1 {
        return "1 Byte".to_owned();
    }
    if bytes < 1000 {
        return format!("{bytes} Bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1000.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// Render `text` as a QR code in Unicode half blocks (two modules per character cell) for a
/// terminal with a dark background: light modules (and the quiet zone) are drawn, dark modules
/// are left blank, as `qrencode -t UTF8` does. `None` if the text does not fit.
pub fn qr_string(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// A byte progress bar on stderr with rate and ETA, hidden when asked or when stderr is not a
/// terminal.
pub fn progress_bar(total: u64, hide: bool) -> ProgressBar {
    let bar = ProgressBar::hidden();
    show_bar(&bar, total, hide);
    bar
}

/// Turn a hidden bar (made before the size was known) into a [`progress_bar`] of `total`.
pub fn show_bar(bar: &ProgressBar, total: u64, hide: bool) {
    if hide || !std::io::stderr().is_terminal() {
        return;
    }
    bar.set_length(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{percent:>3}%|{wide_bar}| {decimal_bytes}/{decimal_total_bytes} [{elapsed_precise}<{eta_precise}, {decimal_bytes_per_sec}]",
    ) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
}

/// Finish a bar from [`progress_bar`] after all the data went through, leaving it on its own
/// line (once: later calls do nothing).
pub fn finish_bar(bar: &ProgressBar) {
    if !bar.is_hidden() && !bar.is_finished() {
        bar.finish();
        eprintln!();
    }
}

/// Stop a bar where the transfer stopped (a failed transfer must not show 100 %), leaving it on
/// its own line; nothing if it was finished already.
pub fn stop_bar(bar: &ProgressBar) {
    if !bar.is_hidden() && !bar.is_finished() {
        bar.abandon();
        eprintln!();
    }
}

/// [`prompt_line`] on a blocking thread, so the runtime (and its signal handling) keeps running
/// while the user thinks: Ctrl-C at a prompt ends the run at once.
pub async fn ask(prompt: String) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || prompt_line(&prompt))
        .await
        .map_err(std::io::Error::other)?
}

/// Print `prompt` on stderr and read one line from stdin (without the line ending). End of
/// input gives an error, so a script with no stdin cannot loop forever.
pub fn prompt_line(prompt: &str) -> std::io::Result<String> {
    let mut err = std::io::stderr().lock();
    err.write_all(prompt.as_bytes())?;
    err.flush()?;
    drop(err);
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no answer: standard input is closed",
        ));
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

/// The receiver's `ok? (Y/n): ` question: yes on an empty line or anything starting with `y`.
pub fn is_yes_default(answer: &str) -> bool {
    answer.is_empty() || answer.to_lowercase().starts_with('y')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn naturalsize_matches_humanize() {
        assert_eq!(naturalsize(0), "0 Bytes");
        assert_eq!(naturalsize(1), "1 Byte");
        assert_eq!(naturalsize(12), "12 Bytes");
        assert_eq!(naturalsize(999), "999 Bytes");
        assert_eq!(naturalsize(1000), "1.0 kB");
        assert_eq!(naturalsize(1500), "1.5 kB");
        assert_eq!(naturalsize(3_000_000), "3.0 MB");
        assert_eq!(naturalsize(1 << 30), "1.1 GB");
        assert_eq!(naturalsize(999_999), "1000.0 kB");
    }

    #[test]
    fn qr_renders_blocks() {
        let qr = qr_string("wormhole-transfer:4-purple-sausages").unwrap();
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
    }

    #[test]
    fn yes_answers() {
        assert!(is_yes_default(""));
        assert!(is_yes_default("y"));
        assert!(is_yes_default("Yes"));
        assert!(!is_yes_default("n"));
        assert!(!is_yes_default("ok"));
    }
}
