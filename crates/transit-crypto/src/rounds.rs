//! The round schedules of Salsa20 and ChaCha20, written once for every backend (scalar, portable
//! lanes, AVX2, AVX-512): ten double rounds each, of four column quarter-rounds then four row
//! (Salsa20) or diagonal (ChaCha20, RFC 8439 §2.3) ones. Each backend brings its own quarter-round
//! macro for its word type; which words go into which quarter-round lives only here. No state, no
//! I/O.

/// Ten double rounds over `$x`, an array of sixteen `Copy` words held in the locals `$v` (named
/// by the caller, so the schedule's names are the same tokens); each double round runs `$qr!` on
/// the listed quadruples in order. Returns the mixed array (without the feed-forward addition).
/// The words are locals so vector backends keep them in registers.
macro_rules! ten_double_rounds {
    ($qr:ident, $x:expr, [$($v:ident),*], $(($a:ident, $b:ident, $c:ident, $d:ident))*) => {{
        let [$(mut $v),*] = $x;
        for _ in 0..10 {
            $($qr!($a, $b, $c, $d);)*
        }
        [$($v),*]
    }};
}

/// Twenty Salsa20 rounds over `$x` (sixteen words); `$qr` names a macro `qr!(a, b, c, d)` that
/// updates its four word variables in place.
macro_rules! salsa20_rounds {
    ($qr:ident, $x:expr) => {
        $crate::rounds::ten_double_rounds!(
            $qr,
            $x,
            [
                x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15
            ],
            (x0, x4, x8, x12)(x5, x9, x13, x1)(x10, x14, x2, x6)(x15, x3, x7, x11)(x0, x1, x2, x3)(
                x5, x6, x7, x4
            )(x10, x11, x8, x9)(x15, x12, x13, x14)
        )
    };
}

/// Twenty ChaCha20 rounds over `$x` (sixteen words); `$qr` as for [`salsa20_rounds`].
macro_rules! chacha20_rounds {
    ($qr:ident, $x:expr) => {
        $crate::rounds::ten_double_rounds!(
            $qr,
            $x,
            [
                x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15
            ],
            (x0, x4, x8, x12)(x1, x5, x9, x13)(x2, x6, x10, x14)(x3, x7, x11, x15)(x0, x5, x10, x15)(
                x1, x6, x11, x12
            )(x2, x7, x8, x13)(x3, x4, x9, x14)
        )
    };
}

pub(crate) use {chacha20_rounds, salsa20_rounds, ten_double_rounds};
