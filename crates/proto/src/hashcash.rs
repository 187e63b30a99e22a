//! Hashcash v1 stamps for the mailbox's `permission-required` scheme (docs/protocol.md §1.10):
//! parsing and checking an untrusted stamp (the server), and minting one (the client).
//!
//! A stamp is `1:BITS:DATE:RESOURCE:EXT:RAND:COUNTER`; it is valid for a resource and a
//! difficulty when its SHA-1 digest (of the stamp text) starts with at least that many zero
//! bits. Owns: the format, its bounds and the work check. Must not: read a clock or pick random
//! values (the date and the random part are passed in), or know about connections.

use sha1::{Digest, Sha1};

/// Longest stamp accepted (bytes).
pub const MAX_STAMP_LEN: usize = 256;
/// Longest field (date, resource, extension, random part, counter) accepted, in bytes.
pub const MAX_FIELD_LEN: usize = 64;
/// Most bits a client mints (about 16 million SHA-1s, a few seconds): a server asking for more
/// is refused rather than obeyed for minutes. Servers may ask for fewer.
pub const MAX_MINT_BITS: u32 = 24;

/// Why a stamp is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// Longer than [`MAX_STAMP_LEN`].
    #[error("stamp longer than {MAX_STAMP_LEN} bytes")]
    TooLong,
    /// Not seven `:`-separated fields.
    #[error("stamp must have 7 fields separated by ':' (1:bits:date:resource:ext:rand:counter)")]
    Fields,
    /// Version other than `1`.
    #[error("only hashcash version 1 stamps are accepted")]
    Version,
    /// The bits field is not a number up to 160.
    #[error("the bits field is not a number from 0 to 160")]
    Bits,
    /// A field is empty, too long, or has characters outside `[A-Za-z0-9+/=._-]`.
    #[error("the {0} field is empty, longer than {MAX_FIELD_LEN} bytes, or has odd characters")]
    Field(&'static str),
    /// The stamp is for another resource.
    #[error("the stamp is for another resource than this connection's")]
    WrongResource,
    /// The stamp claims fewer bits than required.
    #[error("the stamp claims {claimed} bits, {required} are required")]
    TooFewBits {
        /// Bits required.
        required: u32,
        /// Bits the stamp claims.
        claimed: u32,
    },
    /// The digest does not have the required zero bits.
    #[error("the stamp's SHA-1 has {found} leading zero bits, {required} are required")]
    NotEnoughWork {
        /// Bits required.
        required: u32,
        /// Leading zero bits found.
        found: u32,
    },
}

/// A parsed stamp (borrowing the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// Claimed difficulty.
    pub bits: u32,
    /// Date field (`YYMMDD…` or, from wormhole-rs, base64 of `YYYYMMDD`); not interpreted.
    pub date: &'a str,
    /// The resource the stamp is for.
    pub resource: &'a str,
    /// Extension field (usually empty).
    pub ext: &'a str,
    /// Random part.
    pub rand: &'a str,
    /// Counter.
    pub counter: &'a str,
}

fn field_ok(s: &str, may_be_empty: bool) -> bool {
    (may_be_empty || !s.is_empty())
        && s.len() <= MAX_FIELD_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'.' | b'_' | b'-'))
}

/// Parse a stamp's syntax (no work check).
pub fn parse(stamp: &str) -> Result<Stamp<'_>, StampError> {
    if stamp.len() > MAX_STAMP_LEN {
        return Err(StampError::TooLong);
    }
    let f: Vec<&str> = stamp.split(':').collect();
    let [ver, bits, date, resource, ext, rand, counter] = f.as_slice() else {
        return Err(StampError::Fields);
    };
    if *ver != "1" {
        return Err(StampError::Version);
    }
    let bits: u32 = match bits.parse() {
        Ok(b) if b <= 160 && !bits.starts_with('+') => b,
        _ => return Err(StampError::Bits),
    };
    for (name, value, may_be_empty) in [
        ("date", date, true),
        ("resource", resource, false),
        ("extension", ext, true),
        ("random", rand, false),
        ("counter", counter, false),
    ] {
        if !field_ok(value, may_be_empty) {
            return Err(StampError::Field(name));
        }
    }
    Ok(Stamp {
        bits,
        date,
        resource,
        ext,
        rand,
        counter,
    })
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        n += b.leading_zeros();
        if *b != 0 {
            break;
        }
    }
    n
}

fn work(stamp: &str) -> u32 {
    leading_zero_bits(&Sha1::digest(stamp.as_bytes()))
}

/// Check an untrusted stamp for `resource` at difficulty `bits`: syntax, resource, claimed bits
/// and the work itself (one SHA-1).
pub fn check(stamp: &str, resource: &str, bits: u32) -> Result<(), StampError> {
    let s = parse(stamp)?;
    if s.resource != resource {
        return Err(StampError::WrongResource);
    }
    if s.bits < bits {
        return Err(StampError::TooFewBits {
            required: bits,
            claimed: s.bits,
        });
    }
    let found = work(stamp);
    if found < bits {
        return Err(StampError::NotEnoughWork {
            required: bits,
            found,
        });
    }
    Ok(())
}

/// Mint a stamp for `resource` with `bits` of work (at most [`MAX_MINT_BITS`]; `None` above, or
/// if `resource` is not a valid field). `date` is `YYMMDD` ([`date_yymmdd`]); `rand` a random
/// string of field characters (e.g. hex). Takes about 2^bits SHA-1 computations.
pub fn mint(resource: &str, bits: u32, date: &str, rand: &str) -> Option<String> {
    if bits > MAX_MINT_BITS || !field_ok(resource, false) || !field_ok(date, true) || !field_ok(rand, false) {
        return None;
    }
    let prefix = format!("1:{bits}:{date}:{resource}::{rand}:");
    // The prefix's SHA-1 state is computed once; each try hashes only the counter.
    let mut base = Sha1::new();
    base.update(prefix.as_bytes());
    let mut counter = String::with_capacity(16);
    for n in 0u64.. {
        counter.clear();
        use std::fmt::Write as _;
        let _ = write!(counter, "{n:x}");
        let mut h = base.clone();
        h.update(counter.as_bytes());
        if leading_zero_bits(&h.finalize()) >= bits {
            return Some(format!("{prefix}{counter}"));
        }
    }
    None
}

/// The UTC date `YYMMDD` of a Unix time (seconds), for a stamp's date field.
pub fn date_yymmdd(unix_secs: f64) -> String {
    let days = if unix_secs.is_finite() && unix_secs > 0.0 {
        (unix_secs / 86_400.0) as i64
    } else {
        0
    };
    let (year, month, day) = civil_date(days);
    format!("{:02}{month:02}{day:02}", year.rem_euclid(100))
}

/// Days since 1970-01-01 to a civil date `(year, month, day)` (proleptic Gregorian).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mint_then_check() {
        let s = mint("r3s0urce", 12, "261203", "abcdef0123").unwrap();
        assert!(s.starts_with("1:12:261203:r3s0urce::abcdef0123:"), "{s}");
        assert_eq!(check(&s, "r3s0urce", 12), Ok(()));
        assert_eq!(check(&s, "other", 12), Err(StampError::WrongResource));
        assert!(matches!(
            check(&s, "r3s0urce", 13),
            Err(StampError::TooFewBits { .. })
        ));
        assert!(mint("r", MAX_MINT_BITS + 1, "", "x").is_none());
        assert!(mint("has:colon", 1, "", "x").is_none());
    }

    #[test]
    fn forged_stamps_are_refused() {
        // Claims 20 bits without the work (the chance that this digest has 20 zero bits is nil:
        // checked below).
        let s = "1:20:261203:res::abc:0";
        assert!(matches!(
            check(s, "res", 20),
            Err(StampError::NotEnoughWork { required: 20, .. })
        ));
        assert_eq!(parse("1:2:3"), Err(StampError::Fields));
        assert_eq!(parse("2:1:d:r::a:b"), Err(StampError::Version));
        assert_eq!(parse("1:x:d:r::a:b"), Err(StampError::Bits));
        assert_eq!(parse("1:999:d:r::a:b"), Err(StampError::Bits));
        assert_eq!(parse("1:1:d:r:: :b"), Err(StampError::Field("random")));
        assert_eq!(parse("1:1:d:::a:b"), Err(StampError::Field("resource")));
        assert_eq!(parse(&"1".repeat(300)), Err(StampError::TooLong));
    }

    #[test]
    fn the_protocols_example_and_a_wormhole_rs_shaped_stamp_parse() {
        let p = parse("1:6:210723:resource-string::NmZNF4eIbk87mqYz:000003n").unwrap();
        assert_eq!((p.bits, p.resource, p.date), (6, "resource-string", "210723"));
        // wormhole-rs: base64 date, rand and counter.
        let p = parse("1:10:MjAyNjEyMDM=:abc::q83vEjRWeJq83vEjRWeJqw==:AAAAAAAAAAE=").unwrap();
        assert_eq!(p.counter, "AAAAAAAAAAE=");
    }

    #[test]
    fn dates() {
        assert_eq!(date_yymmdd(0.0), "700101");
        assert_eq!(date_yymmdd(951_782_400.0), "000229"); // 2000-02-29
        assert_eq!(date_yymmdd(1_796_256_000.0), "261203"); // 2026-12-03
        assert_eq!(date_yymmdd(f64::NAN), "700101");
    }

    #[test]
    fn zero_bits() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10, 0xff]), 19);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
