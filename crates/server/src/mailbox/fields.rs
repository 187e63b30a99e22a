//! Extraction and validation of the fields of an untrusted client command.
//!
//! Each helper returns the exact error string the client will see. Missing keys use the
//! server 0.8.0 wording (given by the caller); wrong types and oversized values get our own
//! clear wording, where the Python server would have dropped the connection.

use serde_json::{Map, Value};

/// Longest accepted appid, side, phase, mood or mailbox id (bytes).
pub const MAX_NAME_LEN: usize = 1024;
/// Longest accepted nameplate (characters), as in server 0.8.0.
pub const MAX_NAMEPLATE_LEN: usize = 40;

/// A required string field: `missing` is the error when the key is absent.
pub fn required_str<'a>(msg: &'a Map<String, Value>, key: &str, missing: &str) -> Result<&'a str, String> {
    match msg.get(key) {
        None => Err(missing.to_owned()),
        Some(v) => as_str(key, v),
    }
}

/// An optional string field (absent or `null` both mean "not given").
pub fn optional_str<'a>(msg: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match msg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_str(key, v).map(Some),
    }
}

/// A field the client may leave out when this connection named it in an earlier command
/// (`release` after `claim`, `close` after `open`). Given, it must equal the `remembered`
/// value if there is one (error `mismatch`) and be a bounded string; absent, the remembered
/// value is used, and without one the error is `missing`.
pub fn given_or_remembered(
    msg: &Map<String, Value>,
    key: &str,
    remembered: Option<&str>,
    mismatch: &str,
    missing: &str,
) -> Result<String, String> {
    match (msg.get(key), remembered) {
        (Some(v), Some(earlier)) if v.as_str() != Some(earlier) => Err(mismatch.to_owned()),
        (Some(v), _) => Ok(as_str(key, v)?.to_owned()),
        (None, Some(earlier)) => Ok(earlier.to_owned()),
        (None, None) => Err(missing.to_owned()),
    }
}

/// A string value of bounded length.
pub fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, String> {
    match v {
        Value::String(s) if s.len() <= MAX_NAME_LEN => Ok(s),
        Value::String(s) => Err(format!(
            "'{key}' is too long ({} bytes, at most {MAX_NAME_LEN})",
            s.len()
        )),
        other => Err(format!("'{key}' must be a string, not {}", type_name(other))),
    }
}

/// JSON type name for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Check a nameplate: 1 to 40 ASCII digits.
pub fn check_nameplate(v: &Value) -> Result<&str, String> {
    let Value::String(s) = v else {
        return Err(format!(
            "invalid nameplate: must be a string of digits, not {}",
            type_name(v)
        ));
    };
    if s.is_empty() {
        return Err("invalid nameplate: empty".to_owned());
    }
    if s.chars().count() > MAX_NAMEPLATE_LEN {
        return Err(format!(
            "invalid nameplate: longer than {MAX_NAMEPLATE_LEN} characters"
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid nameplate: must contain only digits 0-9".to_owned());
    }
    Ok(s)
}

/// Parse `client_version`: absent or `null` gives `(None, None)`; otherwise a list of at least
/// two items, each a string (kept), `null` (none) or anything else (kept as its JSON text).
pub fn client_version(msg: &Map<String, Value>) -> Result<(Option<String>, Option<String>), String> {
    let item = |v: &Value| -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.chars().take(MAX_NAME_LEN).collect()),
            other => Some(other.to_string().chars().take(MAX_NAME_LEN).collect()),
        }
    };
    match msg.get("client_version") {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Array(a)) if a.len() >= 2 => Ok((a.first().and_then(item), a.get(1).and_then(item))),
        Some(_) => Err("bind 'client_version' must be a list [implementation, version]".to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn strings() {
        let m = obj(json!({"a": "x", "n": 3, "z": null}));
        assert_eq!(required_str(&m, "a", "need a"), Ok("x"));
        assert_eq!(required_str(&m, "b", "need b"), Err("need b".into()));
        assert_eq!(
            required_str(&m, "n", "need n"),
            Err("'n' must be a string, not a number".into())
        );
        assert_eq!(optional_str(&m, "z"), Ok(None));
        assert_eq!(optional_str(&m, "q"), Ok(None));
        let long = obj(json!({"a": "x".repeat(MAX_NAME_LEN + 1)}));
        assert!(required_str(&long, "a", "").unwrap_err().contains("too long"));
    }

    #[test]
    fn given_or_remembered_field() {
        let given = obj(json!({"k": "1", "n": 3}));
        let none = obj(json!({}));
        let f = |m, key, earlier| given_or_remembered(m, key, earlier, "mismatch", "missing");
        assert_eq!(f(&given, "k", None), Ok("1".into()));
        assert_eq!(f(&given, "k", Some("1")), Ok("1".into()));
        assert_eq!(f(&given, "k", Some("2")), Err("mismatch".into()));
        assert_eq!(f(&given, "n", Some("3")), Err("mismatch".into()));
        assert_eq!(
            f(&given, "n", None),
            Err("'n' must be a string, not a number".into())
        );
        assert_eq!(f(&none, "k", Some("2")), Ok("2".into()));
        assert_eq!(f(&none, "k", None), Err("missing".into()));
    }

    #[test]
    fn nameplates() {
        assert_eq!(check_nameplate(&json!("123")), Ok("123"));
        assert!(check_nameplate(&json!(7)).is_err());
        assert!(check_nameplate(&json!("7\n")).is_err());
        assert!(check_nameplate(&json!("a7")).is_err());
        assert!(check_nameplate(&json!("")).is_err());
        assert!(check_nameplate(&json!("1".repeat(41))).is_err());
        assert!(check_nameplate(&json!("1".repeat(40))).is_ok());
        assert!(check_nameplate(&json!("٣")).is_err());
    }

    #[test]
    fn client_versions() {
        let ok = obj(json!({"client_version": ["python", "0.24.0"]}));
        assert_eq!(
            client_version(&ok),
            Ok((Some("python".into()), Some("0.24.0".into())))
        );
        assert_eq!(client_version(&obj(json!({}))), Ok((None, None)));
        assert!(client_version(&obj(json!({"client_version": "x"}))).is_err());
        assert!(client_version(&obj(json!({"client_version": ["x"]}))).is_err());
        assert_eq!(
            client_version(&obj(json!({"client_version": [1, null, 3]}))),
            Ok((Some("1".into()), None))
        );
    }
}
