//! Small user-facing formatting helpers: sizes like Python's `humanize.naturalsize`, the QR code
//! of the `wormhole-transfer:` URI, progress bars, and yes/no prompts on the terminal.
//!
//! Everything here writes to stderr (or returns strings); stdout is reserved for received text
//! and `--json` events. With `--json` nothing here prompts.

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

/// Turn a hidden bar into a byte progress bar of `total` on stderr with rate and ETA, unless
/// hidden (`hide`) or stderr is not a terminal.
pub fn show_bar(bar: &ProgressBar, total: u64, hide: bool) {
    if hide || !std::io::stderr().is_terminal() {
        return;
    }
    let width = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_rows, cols)| usize::from(cols));
    bar.set_length(total);
    if let Ok(style) = ProgressStyle::with_template(bar_template(width)) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
}

/// The bar's template for a terminal of `width` columns: the Python CLI's full line (percent,
/// bar, bytes, elapsed<ETA, rate) from 80 columns, then fewer fields, so the fixed text never
/// leaves less than 10 columns of bar and a line never wraps.
pub fn bar_template(width: usize) -> &'static str {
    if width >= 80 {
        "{percent:>3}%|{wide_bar}| {decimal_bytes}/{decimal_total_bytes} [{elapsed_precise}<{eta_precise}, {decimal_bytes_per_sec}]"
    } else if width >= 50 {
        "{percent:>3}%|{wide_bar}| {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}"
    } else if width >= 30 {
        "{percent:>3}%|{wide_bar}| {decimal_bytes}"
    } else {
        "{percent:>3}%|{wide_bar}|"
    }
}

/// Finish a bar from [`show_bar`] after all the data went through, leaving it on its own
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
/// input gives an error, so a script with no stdin cannot loop forever; so does `--json`, which
/// never asks.
pub fn prompt_line(prompt: &str) -> std::io::Result<String> {
    if crate::json::enabled() {
        // The flows refuse earlier with the flag to use; this keeps any other question out.
        return Err(std::io::Error::other(format!(
            "--json: refusing to ask {prompt:?} on the terminal"
        )));
    }
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

    /// A terminal of fixed width that records what is written on each line.
    #[derive(Debug, Default, Clone)]
    struct Recorder {
        width: u16,
        lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.lines.lock().unwrap().push(s.to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The bar drawn on a terminal of `width` columns, at a few positions of a 3 GB transfer.
    fn drawn(width: u16) -> Vec<String> {
        let term = Recorder {
            width,
            ..Recorder::default()
        };
        let bar = ProgressBar::with_draw_target(
            Some(3_000_000_000),
            ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        bar.set_style(
            ProgressStyle::with_template(bar_template(usize::from(width)))
                .unwrap()
                .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        for pos in [0, 1_234_567, 999_999_999, 3_000_000_000] {
            bar.set_position(pos);
            bar.tick();
        }
        bar.finish();
        term.lines.lock().unwrap().clone()
    }

    #[test]
    fn the_bar_never_wraps_on_narrow_terminals() {
        for width in [20u16, 29, 30, 40, 49, 50, 60, 79, 80, 120] {
            let lines = drawn(width);
            assert!(!lines.is_empty(), "{width}: nothing drawn");
            for l in &lines {
                let cols = console::measure_text_width(l);
                assert!(cols <= usize::from(width), "{width} columns, {cols} drawn: {l:?}");
            }
            let bar_cells = lines[0].chars().filter(|c| *c == ' ' || *c == '█').count();
            assert!(bar_cells >= 5, "{width}: bar too short in {:?}", lines[0]);
        }
        // Wide terminals keep the Python CLI's fields.
        assert!(drawn(100).iter().any(|l| l.contains('<') && l.contains("/s")));
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
