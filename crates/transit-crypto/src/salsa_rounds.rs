//! The Salsa20 round schedule, written once for every backend (scalar, portable lanes, AVX2,
//! AVX-512): ten double rounds, each four column quarter-rounds then four row quarter-rounds.
//! Each backend brings its own quarter-round macro for its word type; the schedule (which words
//! go into which quarter-round) lives only here. No state, no I/O.

/// Twenty Salsa20 rounds over `$x`, an array of sixteen `Copy` words; returns the mixed array
/// (without the final feed-forward addition). `$qr` names a macro `qr!(a, b, c, d)` that updates
/// its four word variables in place. The words are held in locals so vector backends keep them in
/// registers.
macro_rules! salsa20_rounds {
    ($qr:ident, $x:expr) => {{
        let [
            mut x0,
            mut x1,
            mut x2,
            mut x3,
            mut x4,
            mut x5,
            mut x6,
            mut x7,
            mut x8,
            mut x9,
            mut x10,
            mut x11,
            mut x12,
            mut x13,
            mut x14,
            mut x15,
        ] = $x;
        for _ in 0..10 {
            $qr!(x0, x4, x8, x12);
            $qr!(x5, x9, x13, x1);
            $qr!(x10, x14, x2, x6);
            $qr!(x15, x3, x7, x11);
            $qr!(x0, x1, x2, x3);
            $qr!(x5, x6, x7, x4);
            $qr!(x10, x11, x8, x9);
            $qr!(x15, x12, x13, x14);
        }
        [
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
        ]
    }};
}

pub(crate) use salsa20_rounds;
