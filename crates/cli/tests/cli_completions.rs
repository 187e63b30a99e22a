//! `wormhole completions SHELL` and `wormhole man`: the scripts load in a real `bash` and `zsh`
//! (and complete our subcommands and flags there), the other shells' scripts are generated, and
//! `man -l` renders the pages. `bash`, `zsh` and `man` come from scripts/install-peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wormhole(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wormhole"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WORMHOLE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.args(args).output().unwrap()
}

/// Write `wormhole completions shell` (or `man …`) to a file in `dir`.
fn generated(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = wormhole(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    assert!(!out.stdout.is_empty(), "{args:?}: empty");
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// The path of `tool`, or a panic naming the script that installs it.
fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not installed: run scripts/install-peers (it installs bash, zsh and man-db)")
        })
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        out.status
    );
    stdout
}

#[test]
fn bash_loads_and_completes() {
    let bash = require("bash");
    let d = tempfile::tempdir().unwrap();
    let script = generated(d.path(), "wormhole.bash", &["completions", "bash"]);
    let probe = format!(
        r#"set -e
source {s}
complete -p wormhole
COMP_WORDS=(wormhole se); COMP_CWORD=1; _wormhole wormhole se wormhole
echo "1: ${{COMPREPLY[*]}}"
COMP_WORDS=(wormhole receive --acc); COMP_CWORD=2; _wormhole wormhole --acc receive
echo "2: ${{COMPREPLY[*]}}"
COMP_WORDS=(wormhole completions ''); COMP_CWORD=2; _wormhole wormhole '' completions
echo "3: ${{COMPREPLY[*]}}"
"#,
        s = script.display()
    );
    let out = run(&bash, &["--norc", "--noprofile", "-c", &probe]);
    assert!(out.contains("-F _wormhole wormhole"), "{out}");
    assert!(out.contains("1: send"), "{out}");
    assert!(out.contains("2: --accept-file"), "{out}");
    let shells = out.lines().find(|l| l.starts_with("3: ")).unwrap();
    for s in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.contains(s), "{shells}");
    }
}

#[test]
fn zsh_loads_and_registers() {
    let zsh = require("zsh");
    let d = tempfile::tempdir().unwrap();
    let script = generated(d.path(), "_wormhole", &["completions", "zsh"]);
    let probe = format!(
        "autoload -U compinit && compinit -u -D && source {} && print -r -- \"comp=$_comps[wormhole]\" \
         && whence -w _wormhole",
        script.display()
    );
    let out = run(&zsh, &["-f", "-c", &probe]);
    assert!(out.contains("comp=_wormhole"), "{out}");
    assert!(out.contains("_wormhole: function"), "{out}");
    // The script is also valid as an autoloaded function file (`fpath` install).
    let probe = format!(
        "fpath=({} $fpath); autoload -U compinit && compinit -u -D && print -r -- \"comp=$_comps[wormhole]\"",
        d.path().display()
    );
    assert!(run(&zsh, &["-f", "-c", &probe]).contains("comp=_wormhole"));
}

#[test]
fn every_shell_gets_a_script() {
    for (shell, marker) in [
        ("fish", "complete -c wormhole"),
        ("elvish", "edit:completion:arg-completer[wormhole]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = wormhole(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: no {marker:?} in\n{text}");
    }
    assert_eq!(wormhole(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_renders_the_pages() {
    let man = require("man");
    let d = tempfile::tempdir().unwrap();
    for (page, args, words) in [
        (
            "wormhole.1",
            &["man"][..],
            &[
                "NAME",
                "wormhole",
                "--relay-url",
                "--json",
                "--show-config",
                "wormhole-send(1)",
            ][..],
        ),
        (
            "wormhole-send.1",
            &["man", "send"],
            &["wormhole-send", "--code", "--text", "--no-qr"],
        ),
        (
            "wormhole-receive.1",
            &["man", "receive"],
            &["--accept-file", "--output-file"],
        ),
        (
            "wormhole-ssh-accept.1",
            &["man", "ssh", "accept"],
            &["--key-file", "--yes"],
        ),
    ] {
        let file = generated(d.path(), page, args);
        let out = Command::new(&man)
            .args(["--warnings", "--nh", "--nj", "-l"])
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "{page}: {}\n{err}",
            out.status
        );
        // Plain text (no overstrike): drop backspace sequences before searching.
        let plain: String = strip_overstrike(&text);
        for w in words {
            assert!(plain.contains(w), "{page}: {w} missing from\n{plain}");
        }
    }
    assert_eq!(wormhole(&["man", "bogus"]).status.code(), Some(2));
}

/// `man` may embolden with `c\bc` and underline with `_\bc`.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect::<String>().replace('\u{2010}', "-")
}
