//! The engine used in production, chosen once per process: `WORMHOLE_TRANSIT_CRYPTO=auto` (the
//! default) takes the fastest hand-written backends this CPU has, `rustcrypto` the audited
//! RustCrypto path. Before first use the chosen engine passes a known-answer self-test (the NaCl
//! secretbox vector, and agreement with RustCrypto over lengths that reach every code path);
//! if it fails, RustCrypto is used instead and stderr says so once. An unknown value of the
//! variable is reported the same way and also selects RustCrypto (the cautious reading).
//!
//! Owns the variable, the self-test and the `OnceLock`; it must not hold key material.

use std::sync::OnceLock;

use crate::engine::Engine;

/// The environment variable that picks the engine.
pub const ENV_VAR: &str = "WORMHOLE_TRANSIT_CRYPTO";

/// What the variable asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The fastest engine that passes its self-test (the default).
    Auto,
    /// The RustCrypto path.
    RustCrypto,
}

/// The variable holds a value other than `auto` or `rustcrypto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue(pub String);

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{ENV_VAR}={:?} is not one of auto, rustcrypto", self.0)
    }
}

impl std::error::Error for UnknownValue {}

impl Request {
    /// Parse the variable's value (`None` when it is unset): `auto`, `rustcrypto` or empty,
    /// ignoring case and surrounding spaces.
    pub fn parse(value: Option<&str>) -> Result<Request, UnknownValue> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("auto") => Ok(Request::Auto),
            Some("rustcrypto") => Ok(Request::RustCrypto),
            Some(_) => Err(UnknownValue(value.unwrap_or_default().to_string())),
        }
    }

    /// The request in this process's environment.
    pub fn from_env() -> Result<Request, UnknownValue> {
        match std::env::var_os(ENV_VAR) {
            None => Request::parse(None),
            Some(v) => match v.to_str() {
                Some(s) => Request::parse(Some(s)),
                None => Err(UnknownValue(v.to_string_lossy().into_owned())),
            },
        }
    }
}

/// An engine choice and what to tell the user about it, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The engine to use.
    pub engine: Engine,
    /// A line for stderr (an unknown variable value, a failed self-test).
    pub note: Option<String>,
}

/// Choose the engine for `request`, running `self_test` on a hand-written candidate.
pub fn choose(request: Result<Request, UnknownValue>, self_test: impl Fn(Engine) -> bool) -> Choice {
    let candidate = match request {
        Err(e) => {
            return Choice {
                engine: Engine::RUSTCRYPTO,
                note: Some(format!("{e}; using the rustcrypto transit crypto")),
            };
        }
        Ok(Request::RustCrypto) => Engine::RUSTCRYPTO,
        Ok(Request::Auto) => Engine::detect(),
    };
    if candidate == Engine::RUSTCRYPTO || self_test(candidate) {
        return Choice {
            engine: candidate,
            note: None,
        };
    }
    Choice {
        engine: Engine::RUSTCRYPTO,
        note: Some(format!(
            "the {} transit crypto failed its self-test; using rustcrypto instead",
            candidate.name()
        )),
    }
}

const KAT_KEY: &str = "ddc543ef8e4629a603d39dd0307a51bb1e7adb9cb259f6b085c91d0842a18679";
const KAT_NONCE: &str = "2d5e43eb465aa42e750f991e425bee485f06abad7e04af80";
const KAT_PLAIN: &str = "edc089a518219ec1cee184e89d2d37af";
const KAT_BOX: &str = "fe318e39d0e4ce932d2b54b300c56d2cda55ee5f0488d63eb1d5f76f7919a49a";

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *o = d(pair[0]) << 4 | d(pair.get(1).copied().unwrap_or(b'0'));
    }
    out
}

/// Lengths that reach every path: the Poly1305 key block, one-block tails of each size class,
/// the eight- and sixteen-block cores, the IFMA minimum and a full record.
const SELF_TEST_LENS: [usize; 16] = [
    0, 1, 31, 33, 63, 64, 100, 255, 256, 481, 513, 1000, 1025, 2100, 4113, 16384,
];

/// The known-answer self-test: the NaCl vector, then agreement with RustCrypto (ciphertext,
/// tag, opening, refusing a flipped tag bit) over `SELF_TEST_LENS`.
pub fn self_test(engine: Engine) -> bool {
    let (key, nonce): ([u8; 32], [u8; 24]) = (unhex(KAT_KEY), unhex(KAT_NONCE));
    let mut buf: [u8; 16] = unhex(KAT_PLAIN);
    let tag = engine.seal(&key, &nonce, &mut buf);
    let want: [u8; 32] = unhex(KAT_BOX);
    if tag[..] != want[..16] || buf[..] != want[16..] {
        return false;
    }
    SELF_TEST_LENS.iter().all(|&len| agrees(engine, len))
}

fn agrees(engine: Engine, len: usize) -> bool {
    let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + len) as u8);
    let nonce: [u8; 24] = core::array::from_fn(|i| (i * 13 + 1) as u8 ^ len as u8);
    let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 5) as u8).collect();
    let (mut ours, mut theirs) = (plain.clone(), plain.clone());
    let tag = engine.seal(&key, &nonce, &mut ours);
    let rtag = Engine::RUSTCRYPTO.seal(&key, &nonce, &mut theirs);
    if tag != rtag || ours != theirs {
        return false;
    }
    let mut bad = tag;
    bad[len % 16] ^= 1 << (len % 8);
    if engine.open(&key, &nonce, &mut theirs, &bad) {
        return false;
    }
    engine.open(&key, &nonce, &mut ours, &tag) && ours == plain
}

/// The engine of this process: chosen, self-tested and announced (if needed) on first use.
pub fn selected() -> Engine {
    static CHOSEN: OnceLock<Engine> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let c = choose(Request::from_env(), self_test);
        if let Some(note) = c.note {
            eprintln!("wormhole: {note}");
        }
        c.engine
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        assert_eq!(Request::parse(None), Ok(Request::Auto));
        assert_eq!(Request::parse(Some("")), Ok(Request::Auto));
        assert_eq!(Request::parse(Some(" Auto ")), Ok(Request::Auto));
        assert_eq!(Request::parse(Some("rustcrypto")), Ok(Request::RustCrypto));
        assert_eq!(Request::parse(Some("RustCrypto")), Ok(Request::RustCrypto));
        let e = Request::parse(Some("rust-crypto")).unwrap_err();
        assert_eq!(e, UnknownValue("rust-crypto".into()));
        assert!(e.to_string().contains(ENV_VAR));
    }

    #[test]
    fn unknown_value_selects_rustcrypto_and_names_the_variable() {
        let c = choose(Request::parse(Some("fast")), |_| true);
        assert_eq!(c.engine, Engine::RUSTCRYPTO);
        assert!(c.note.is_some_and(|n| n.contains(ENV_VAR)));
    }

    #[test]
    fn rustcrypto_request_skips_the_candidate() {
        let c = choose(Ok(Request::RustCrypto), |_| panic!("no self-test needed"));
        assert_eq!(
            c,
            Choice {
                engine: Engine::RUSTCRYPTO,
                note: None
            }
        );
    }

    #[test]
    fn failed_self_test_falls_back_with_a_note() {
        let c = choose(Ok(Request::Auto), |_| false);
        assert_eq!(c.engine, Engine::RUSTCRYPTO);
        if Engine::detect() != Engine::RUSTCRYPTO {
            assert!(c.note.is_some_and(|n| n.contains("self-test")));
        }
        let c = choose(Ok(Request::Auto), |_| true);
        assert_eq!(c.engine, Engine::detect());
        assert_eq!(c.note, None);
    }

    #[test]
    fn every_runnable_engine_passes_the_self_test() {
        for e in Engine::runnable() {
            assert!(self_test(e), "{e:?}");
        }
    }

    /// A wrong engine fails the self-test (checked through the NaCl vector's expected bytes).
    #[test]
    fn the_self_test_knows_the_answer() {
        let want: [u8; 32] = unhex(KAT_BOX);
        assert_eq!(hex_of(&want), KAT_BOX);
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
