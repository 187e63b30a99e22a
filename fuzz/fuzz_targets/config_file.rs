//! Fuzz target: the CLI's config file parser (`crates/cli/src/config_file.rs`, included as it is:
//! it is self-contained) on arbitrary bytes. It must never panic; what it accepts must be within
//! the documented ranges, and every refusal must name a line that exists.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/config_file.rs"]
#[allow(dead_code)]
mod config_file;

use config_file::{ConfigError, MAX_CONFIG_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data, Path::new("fuzz.toml")) {
        Ok(c) => {
            assert!(data.len() <= MAX_CONFIG_BYTES);
            if let Some(n) = c.code_length {
                assert!((1..=64).contains(&n));
            }
            for s in [&c.relay_url, &c.transit_helper, &c.appid].into_iter().flatten() {
                assert!(!s.is_empty() && !s.chars().any(char::is_control));
            }
        }
        Err(ConfigError::Invalid { line, .. }) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
        Err(ConfigError::TooLarge { .. }) => assert!(data.len() > MAX_CONFIG_BYTES),
        Err(ConfigError::Read { .. }) => unreachable!("parse reads nothing"),
    }
});
