//! JSON encoding byte-compatible with Python's default `json.dumps`: `", "` and `": "`
//! separators and non-ASCII escaped as `\uXXXX` (surrogate pairs above the BMP). Pure function.

use serde_json::Value;

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // Python prints floats with at least one decimal digit.
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&n.to_string());
                }
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, e);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, e)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, e);
            }
            out.push('}');
        }
    }
}

/// Encode `v` exactly like Python's `json.dumps(v)` (key order as in the map).
pub fn to_python_json(v: &Value) -> Vec<u8> {
    let mut s = String::new();
    write_value(&mut s, v);
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python() {
        assert_eq!(
            to_python_json(&json!({"a": [1, 2.0, null, true]})),
            br#"{"a": [1, 2.0, null, true]}"#
        );
        assert_eq!(
            to_python_json(&json!("é😀\u{1}\n\"\\")),
            br#""\u00e9\ud83d\ude00\u0001\n\"\\""#
        );
        assert_eq!(to_python_json(&json!(0.5)), b"0.5");
    }
}
