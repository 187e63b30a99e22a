//! The whole-CLI phases of `transit-bench`: a `wormhole send FILE` / `wormhole receive` process
//! pair per implementation, on our mailbox server, with Python's transit relay on 127.0.0.1:4001.
//! Each process is polled (every 20 ms) for CPU time and peak RSS; the received file is checked
//! by SHA-256. Measures and prints only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;
use wormhole_bench::server_proc::{ServerProc, ServerSpec};
use wormhole_bench::sys;

use super::{Args, RelayProc, peer_dir, start_python_relay_on};

const RELAY_PORT: u16 = 4001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Ours,
    Python,
    Go,
    Rs,
}

impl Impl {
    fn parse(s: &str) -> anyhow::Result<Impl> {
        Ok(match s {
            "ours" => Impl::Ours,
            "python" => Impl::Python,
            "go" => Impl::Go,
            "rs" => Impl::Rs,
            o => bail!("unknown implementation {o:?} (ours, python, go, rs)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Python => "python 0.24",
            Impl::Go => "wormhole-william",
            Impl::Rs => "wormhole-rs",
        }
    }

    fn program(self) -> PathBuf {
        match self {
            Impl::Ours => std::env::current_exe()
                .unwrap_or_default()
                .with_file_name("wormhole"),
            Impl::Python => peer_dir().join("venv/bin/wormhole"),
            Impl::Go => PathBuf::from("/usr/bin/wormhole-william"),
            Impl::Rs => peer_dir().join("rs/bin/wormhole-rs"),
        }
    }

    fn send(self, url: &str, code: &str, file: &Path, relay: bool) -> Command {
        let helper = format!("tcp:127.0.0.1:{RELAY_PORT}");
        let f = file.to_string_lossy().into_owned();
        let mut c = clean(&self.program());
        match self {
            Impl::Ours | Impl::Python => {
                c.args([
                    "--relay-url",
                    url,
                    "--transit-helper",
                    &helper,
                    "send",
                    "--code",
                    code,
                    "--hide-progress",
                ]);
                c.arg("--no-qr");
                if relay {
                    c.arg("--no-listen");
                }
                c.arg(&f);
            }
            Impl::Go => {
                c.args(["send", "--relay-url", url, "--code", code, "--hide-progress", &f]);
            }
            Impl::Rs => {
                let r = format!("tcp://127.0.0.1:{RELAY_PORT}");
                c.args([
                    "send",
                    "--rendezvous-server",
                    url,
                    "--relay-server",
                    &r,
                    "--code",
                    code,
                    "--no-qr",
                ]);
                if relay {
                    c.arg("--force-relay");
                }
                c.arg(&f);
            }
        }
        c
    }

    fn receive(self, url: &str, code: &str, out_dir: &Path, name: &str, relay: bool) -> Command {
        let helper = format!("tcp:127.0.0.1:{RELAY_PORT}");
        let mut c = clean(&self.program());
        c.current_dir(out_dir);
        match self {
            Impl::Ours | Impl::Python => {
                c.args([
                    "--relay-url",
                    url,
                    "--transit-helper",
                    &helper,
                    "receive",
                    "--accept-file",
                ]);
                c.args(["--hide-progress", "-o", name]);
                if relay {
                    c.arg("--no-listen");
                }
                c.arg(code);
            }
            Impl::Go => {
                c.args(["receive", "--relay-url", url, "--hide-progress", code]);
            }
            Impl::Rs => {
                let r = format!("tcp://127.0.0.1:{RELAY_PORT}");
                c.args([
                    "receive",
                    "--noconfirm",
                    "--rendezvous-server",
                    url,
                    "--relay-server",
                    &r,
                ]);
                c.args(["--out-dir", &out_dir.to_string_lossy()]);
                if relay {
                    c.arg("--force-relay");
                }
                c.arg(code);
            }
        }
        c
    }
}

fn clean(program: &Path) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        // The transit crypto choice is what a run compares: it passes through.
        if k.to_string_lossy().starts_with("WORMHOLE_") && k != "WORMHOLE_TRANSIT_CRYPTO" {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// A child process being watched; killed and reaped on drop.
struct Watched {
    child: Child,
    cpu: Duration,
    rss_kb: u64,
    stderr: String,
}

impl Watched {
    fn poll(&mut self) -> anyhow::Result<bool> {
        let pid = self.child.id();
        if let Some(c) = sys::proc_cpu_time(pid) {
            self.cpu = self.cpu.max(c);
        }
        if let Some(r) = sys::peak_rss_kb(pid) {
            self.rss_kb = self.rss_kb.max(r);
        }
        Ok(self.child.try_wait()?.is_some())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut c: Command, stdin: &[u8]) -> anyhow::Result<Watched> {
    let mut child = c.spawn().with_context(|| format!("starting {c:?}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    Ok(Watched {
        child,
        cpu: Duration::ZERO,
        rss_kb: 0,
        stderr: String::new(),
    })
}

struct PairResult {
    wall: f64,
    send: (f64, f64),
    recv: (f64, f64),
}

fn run_pair(send: Command, recv: Command, stdin: &[u8], limit: Duration) -> anyhow::Result<PairResult> {
    let t0 = Instant::now();
    // Both start at once, as a user pair would with a code agreed in advance: whichever side
    // reaches the mailbox first claims the nameplate, the other joins it.
    let mut s = spawn(send, b"")?;
    let mut r = spawn(recv, stdin)?;
    let (mut s_done, mut r_done) = (false, false);
    while !(s_done && r_done) {
        if !s_done {
            s_done = s.poll()?;
        }
        if !r_done {
            r_done = r.poll()?;
        }
        if t0.elapsed() > limit {
            bail!("pair did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = t0.elapsed().as_secs_f64();
    for w in [&mut s, &mut r] {
        if let Some(mut e) = w.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut w.stderr);
        }
    }
    let ok = |w: &mut Watched| w.child.wait().map(|st| st.success()).unwrap_or(false);
    if !ok(&mut s) || !ok(&mut r) {
        bail!(
            "pair failed:\n--- sender\n{}\n--- receiver\n{}",
            tail(&s.stderr),
            tail(&r.stderr)
        );
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    Ok(PairResult {
        wall,
        send: (s.cpu.as_secs_f64(), mb(s.rss_kb)),
        recv: (r.cpu.as_secs_f64(), mb(r.rss_kb)),
    })
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn file_sha256(p: &Path) -> anyhow::Result<[u8; 32]> {
    let mut f = std::fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().into())
}

/// Run the CLI phases (`cli-direct`, `cli-relay`).
pub fn run(args: &Args, phases: &[&str], core: Option<f64>) -> anyhow::Result<()> {
    // `a` pairs an implementation with itself; `a>b` sends with `a` and receives with `b`.
    let impls: Vec<(Impl, Impl)> = args
        .impls
        .split(',')
        .map(|s| match s.trim().split_once('>') {
            Some((a, b)) => Ok((Impl::parse(a.trim())?, Impl::parse(b.trim())?)),
            None => Impl::parse(s.trim()).map(|a| (a, a)),
        })
        .collect::<anyhow::Result<_>>()?;
    let server_bin = std::env::current_exe()?.with_file_name("wormhole-server");
    let server = ServerProc::start(&ServerSpec::Ours {
        bin: server_bin,
        args: vec![],
    })
    .map_err(|e| anyhow::anyhow!("our mailbox server: {e}"))?;
    let url = server.url();
    let _relay = match args.cli_relay.as_str() {
        "python" => {
            start_python_relay_on(args, RELAY_PORT)
                .context("python transit relay on 127.0.0.1:4001")?
                .0
        }
        "ours" => start_our_relay_on(RELAY_PORT).context("our transit relay on 127.0.0.1:4001")?,
        other => bail!("--cli-relay {other:?}: python or ours"),
    };
    println!(
        "(CLI pairs: our mailbox; transit relay on 127.0.0.1:{RELAY_PORT}: {})",
        args.cli_relay
    );
    let work = tempfile_dir()?;
    let src = work.join("payload.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src)?);
        let mut g = super::Gen::new();
        std::io::copy(&mut std::io::Read::take(&mut g, args.size), &mut f)?;
    }
    let want = file_sha256(&src)?;
    let has_direct_addr = if_has_non_loopback();
    let mut n = 0u32;
    for phase in phases {
        let relay = match *phase {
            "cli-direct" => false,
            "cli-relay" => true,
            other => bail!("unknown phase {other}"),
        };
        for &(imp, peer) in &impls {
            let name = if imp == peer {
                imp.name().to_string()
            } else {
                format!("{}>{}", imp.name(), peer.name())
            };
            let label = format!("{name} {}", if relay { "relay" } else { "direct" });
            if let Some(missing) = [imp, peer].into_iter().find(|i| !i.program().exists()) {
                println!(
                    "{label:<28} skipped ({} not installed)",
                    missing.program().display()
                );
                continue;
            }
            if relay && (imp == Impl::Go || peer == Impl::Go) && has_direct_addr {
                println!(
                    "{label:<28} skipped (Go relays only without a direct address: WORMHOLE_NETNS_NO_TEST_ADDR=1)"
                );
                continue;
            }
            // Several runs per implementation, the fastest reported: the first writes into
            // never-touched memory of a VM can cost several times the later ones, whoever runs
            // first.
            let mut best: Option<PairResult> = None;
            let mut walls = Vec::new();
            let mut check = "sha256 ok";
            let mut failed = None;
            for _ in 0..args.repeat.max(1) {
                n += 1;
                let code = format!("{}-purple-sausages", 40 + n);
                let out = work.join(format!("out{n}"));
                std::fs::create_dir_all(&out)?;
                let send = imp.send(&url, &code, &src, relay);
                let recv = peer.receive(&url, &code, &out, "payload.bin", relay);
                let stdin: &[u8] = if peer == Impl::Go { b"y\n" } else { b"" };
                match run_pair(send, recv, stdin, Duration::from_secs(600)) {
                    Ok(r) => {
                        let got = file_sha256(&out.join("payload.bin")).unwrap_or([0; 32]);
                        if got != want {
                            check = "SHA256 MISMATCH";
                        }
                        walls.push(format!("{:.2}", r.wall));
                        if best.as_ref().is_none_or(|b| r.wall < b.wall) {
                            best = Some(r);
                        }
                    }
                    Err(e) => failed = Some(e),
                }
                let _ = std::fs::remove_dir_all(&out);
            }
            if let Some(e) = failed {
                println!("{label:<28} FAILED: {e}");
            }
            let Some(r) = best else { continue };
            let gib = args.size as f64 / (1u64 << 30) as f64;
            // Receiver efficiency: bytes per receiver CPU second against the one-core
            // decrypt+hash limit (what the receiver could do with a core of its own).
            let eff = core
                .map(|c| {
                    let per_cpu = args.size as f64 / r.recv.0.max(1e-9);
                    format!(
                        "  recv {:.0} MB per CPU s = {:.0} % of one-core limit",
                        per_cpu / 1e6,
                        100.0 * per_cpu / c
                    )
                })
                .unwrap_or_default();
            println!(
                "{label:<28} {:>7.0} MB/s  {:>6.2} s  CPU send {:.2} s + recv {:.2} s ({:.2} s/GiB)  peak RSS send {:.1} MB, recv {:.1} MB  {check}{eff}  (best of {} s)",
                args.size as f64 / r.wall / 1e6,
                r.wall,
                r.send.0,
                r.recv.0,
                (r.send.0 + r.recv.0) / gib,
                r.send.1,
                r.recv.1,
                walls.join(", ")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Our `wormhole-server relay` (next to this binary) on 127.0.0.1:`port`, once it accepts.
fn start_our_relay_on(port: u16) -> anyhow::Result<RelayProc> {
    let bin = std::env::current_exe()?.with_file_name("wormhole-server");
    let mut cmd = Command::new(&bin);
    cmd.args(["relay", "--listen", &format!("127.0.0.1:{port}")]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    RelayProc::start(cmd, addr, Duration::from_secs(20), "our transit relay")
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("transit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Whether this host has an address other than loopback (then Go dials it directly).
fn if_has_non_loopback() -> bool {
    !wormhole::transit::local_direct_hints(1)
        .iter()
        .all(|h| matches!(h, wormhole::transit::Hint::DirectTcp(d) if d.hostname == "127.0.0.1"))
}
