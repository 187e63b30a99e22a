//! Which secretbox implementation runs: the audited RustCrypto path, or the hand-written one
//! with a chosen Salsa20 backend and a chosen Poly1305 backend. An [`Engine`] can only be made
//! for backends the CPU has, so every engine value is safe to run; tests walk
//! [`Engine::all`] to check every combination this machine supports and list the ones it skips.
//!
//! Owns the backend names and the CPU feature checks; the arithmetic lives in the backend
//! modules, the choice made at run time in `select.rs`.

/// A Salsa20 keystream backend of the hand-written secretbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Salsa20Backend {
    /// Eight blocks at once in portable `wide` lanes (any CPU).
    Portable,
    /// Eight blocks at once with AVX2 intrinsics.
    Avx2,
    /// Sixteen blocks at once with AVX-512F for whole 1 KiB chunks, AVX2 for the rest.
    Avx512,
}

/// A Poly1305 backend of the hand-written secretbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Poly1305Backend {
    /// The `poly1305` crate (RustCrypto; it picks its own AVX2 code when present).
    RustCrypto,
    /// Our one-block-at-a-time code in radix 2^44 (the IFMA backend's tail and short path).
    Scalar,
    /// Eight blocks at once with AVX-512 IFMA.
    Ifma,
}

/// The CPU lacks a feature the requested backend needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not available here: needs {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512f() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx2")
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_ifma() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx512f() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_ifma() -> bool {
    false
}

impl Salsa20Backend {
    /// Every Salsa20 backend, fastest last.
    pub const ALL: [Salsa20Backend; 3] = [Self::Portable, Self::Avx2, Self::Avx512];

    /// `Ok` when this CPU can run the backend, else the missing feature.
    pub fn check(self) -> Result<(), Unsupported> {
        if cfg!(not(feature = "simd")) {
            return Err(Unsupported("the `simd` cargo feature"));
        }
        match self {
            Self::Portable => Ok(()),
            Self::Avx2 if has_avx2() => Ok(()),
            Self::Avx2 => Err(Unsupported("AVX2")),
            Self::Avx512 if has_avx512f() => Ok(()),
            Self::Avx512 => Err(Unsupported("AVX-512F")),
        }
    }

    /// The fastest backend this CPU can run.
    pub fn detect() -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|b| b.check().is_ok())
            .unwrap_or(Self::Portable)
    }
}

impl Poly1305Backend {
    /// Every Poly1305 backend.
    pub const ALL: [Poly1305Backend; 3] = [Self::RustCrypto, Self::Scalar, Self::Ifma];

    /// `Ok` when this CPU can run the backend, else the missing feature.
    pub fn check(self) -> Result<(), Unsupported> {
        if cfg!(not(feature = "simd")) && self != Self::RustCrypto {
            return Err(Unsupported("the `simd` cargo feature"));
        }
        match self {
            Self::RustCrypto | Self::Scalar => Ok(()),
            Self::Ifma if has_ifma() => Ok(()),
            Self::Ifma => Err(Unsupported("AVX-512 IFMA")),
        }
    }

    /// The backend used in production: IFMA when present, else the `poly1305` crate.
    pub fn detect() -> Self {
        if has_ifma() { Self::Ifma } else { Self::RustCrypto }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    RustCrypto,
    #[cfg(feature = "simd")]
    Simd(Salsa20Backend, Poly1305Backend),
}

/// One secretbox implementation, runnable on this CPU (checked when it was made).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Engine(pub(crate) Kind);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Engine {
    /// The audited RustCrypto `crypto_secretbox` path.
    pub const RUSTCRYPTO: Engine = Engine(Kind::RustCrypto);

    /// The hand-written secretbox with these backends, if this CPU can run both.
    #[cfg(feature = "simd")]
    pub fn simd(salsa: Salsa20Backend, poly: Poly1305Backend) -> Result<Engine, Unsupported> {
        salsa.check()?;
        poly.check()?;
        Ok(Engine(Kind::Simd(salsa, poly)))
    }

    /// What `auto` picks before its self-test: the fastest hand-written backends this CPU has
    /// (RustCrypto when built without the `simd` feature).
    pub fn detect() -> Engine {
        #[cfg(feature = "simd")]
        return Engine(Kind::Simd(Salsa20Backend::detect(), Poly1305Backend::detect()));
        #[cfg(not(feature = "simd"))]
        Engine::RUSTCRYPTO
    }

    /// Every engine this build knows, each with `Ok` when this CPU runs it or the reason it is
    /// skipped. Tests run all the `Ok` ones and print the others.
    pub fn all() -> Vec<(String, Result<Engine, Unsupported>)> {
        #[cfg_attr(not(feature = "simd"), allow(unused_mut))]
        let mut v = vec![(Engine::RUSTCRYPTO.name(), Ok(Engine::RUSTCRYPTO))];
        #[cfg(feature = "simd")]
        for s in Salsa20Backend::ALL {
            for p in Poly1305Backend::ALL {
                v.push((format!("simd({s:?}, {p:?})"), Engine::simd(s, p)));
            }
        }
        v
    }

    /// The engines of [`Engine::all`] this CPU runs; prints the skipped ones to stderr.
    pub fn runnable() -> Vec<Engine> {
        let mut out = Vec::new();
        for (name, e) in Engine::all() {
            match e {
                Ok(e) => out.push(e),
                Err(why) => eprintln!("skipped {name}: {why}"),
            }
        }
        out
    }

    /// A short name: `rustcrypto` or `simd(Avx512, Ifma)`.
    pub fn name(&self) -> String {
        match self.0 {
            Kind::RustCrypto => "rustcrypto".into(),
            #[cfg(feature = "simd")]
            Kind::Simd(s, p) => format!("simd({s:?}, {p:?})"),
        }
    }

    /// Encrypt `buf` in place under `key` and `nonce`; returns the 16-byte tag.
    pub fn seal(&self, key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
        match self.0 {
            Kind::RustCrypto => crate::reference::seal(key, nonce, buf),
            #[cfg(feature = "simd")]
            Kind::Simd(s, p) => crate::simd::seal(s, p, key, nonce, buf),
        }
    }

    /// Check `tag` (in constant time) and decrypt `buf` in place. On a bad tag `buf` is left as
    /// it was and `false` is returned.
    pub fn open(&self, key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        match self.0 {
            Kind::RustCrypto => crate::reference::open(key, nonce, buf, tag),
            #[cfg(feature = "simd")]
            Kind::Simd(s, p) => crate::simd::open(s, p, key, nonce, buf, tag),
        }
    }
}
