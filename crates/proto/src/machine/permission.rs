//! Permission: answering the welcome's `permission-required` before `bind` (docs/protocol.md
//! §1.10). The Boss waits for each connection's welcome, asks [`answer`] what to send first, and
//! only then binds.
//!
//! Owns: choosing a method (`none` when offered, else `hashcash`) and minting the stamp, dated
//! by the welcome's `server_tx` (the server's clock; no clock is read here). Must not: send
//! anything or decide the wormhole's result (the Boss does).

use rand::RngCore;
use serde_json::Value;

use crate::hashcash;

/// What to do about a welcome's `permission-required`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// Nothing asked (or `none` offered): just bind.
    NotRequired,
    /// Send this hashcash stamp in `submit-permissions`, then bind.
    Hashcash(String),
    /// Only methods we do not know are offered (their names).
    Unsupported(Vec<String>),
    /// Hashcash with more bits than we are willing to compute.
    TooHard(u64),
}

/// Decide (and pay) for one welcome. Mints synchronously: about 2^bits SHA-1s (20 bits: well
/// under a second).
pub fn answer(welcome: &Value, server_tx: Option<f64>, rng: &mut dyn RngCore) -> Permission {
    let Some(methods) = welcome.get("permission-required").and_then(Value::as_object) else {
        return Permission::NotRequired;
    };
    // `none` is offered by an object (`{}`); a `null` there (what our server sends, for
    // wormhole-rs's parser) offers nothing.
    if methods.get("none").is_some_and(Value::is_object) {
        return Permission::NotRequired;
    }
    let Some(params) = methods.get("hashcash") else {
        let offered = methods
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.clone());
        return Permission::Unsupported(offered.collect());
    };
    let bits = params.get("bits").and_then(Value::as_u64);
    let resource = params.get("resource").and_then(Value::as_str);
    let (Some(bits), Some(resource)) = (bits, resource) else {
        return Permission::Unsupported(vec!["hashcash (without bits and resource)".to_owned()]);
    };
    if bits > u64::from(hashcash::MAX_MINT_BITS) {
        return Permission::TooHard(bits);
    }
    let mut r = [0u8; 8];
    rng.fill_bytes(&mut r);
    let date = hashcash::date_yymmdd(server_tx.unwrap_or(0.0));
    // `bits` fits: checked against MAX_MINT_BITS above.
    match hashcash::mint(resource, bits as u32, &date, &hex::encode(r)) {
        Some(stamp) => Permission::Hashcash(stamp),
        None => Permission::Unsupported(vec!["hashcash (with an unusable resource)".to_owned()]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn methods() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(answer(&json!({}), None, &mut rng), Permission::NotRequired);
        let none = json!({"permission-required": {"none": {}, "hashcash": {"bits": 99, "resource": "r"}}});
        assert_eq!(answer(&none, None, &mut rng), Permission::NotRequired);
        let odd = json!({"permission-required": {"dark-ritual": {}}});
        assert_eq!(
            answer(&odd, None, &mut rng),
            Permission::Unsupported(vec!["dark-ritual".into()])
        );
        let odd = json!({"permission-required": {"none": null, "dark-ritual": {}}});
        let Permission::Unsupported(names) = answer(&odd, None, &mut rng) else {
            panic!()
        };
        assert!(names.contains(&"dark-ritual".to_owned()));
        let hard = json!({"permission-required": {"hashcash": {"bits": 40, "resource": "r"}}});
        assert_eq!(answer(&hard, None, &mut rng), Permission::TooHard(40));
        let w = json!({"permission-required": {"none": null, "hashcash": {"bits": 8, "resource": "abc"}}});
        let Permission::Hashcash(stamp) = answer(&w, Some(1_796_256_000.0), &mut rng) else {
            panic!()
        };
        assert!(stamp.starts_with("1:8:261203:abc::"), "{stamp}");
        assert_eq!(hashcash::check(&stamp, "abc", 8), Ok(()));
    }
}
