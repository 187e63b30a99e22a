//! Timing recorder: every WebSocket frame sent and received, with wall-clock timestamps, dumped
//! as JSON in the format of Python's `--dump-timing` (`wormhole/timing.py`): a list of
//! `{"name", "start", "stop", "details"}` objects, `start` in float seconds since the epoch,
//! `stop` null for instantaneous events, `details` holding `_side` and the frame.
//!
//! It only records; it never touches the network or decides anything.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingEvent {
    /// Event name, e.g. `ws_send`, `ws_receive`.
    pub name: String,
    /// Start time, seconds since the Unix epoch.
    pub start: f64,
    /// Stop time, if the event has a duration.
    pub stop: Option<f64>,
    /// Free-form details.
    pub details: Map<String, Value>,
}

/// A shared, cloneable timing recorder. Pass one in [`crate::WormholeOptions::timing`] and call
/// [`Timing::write`] at the end.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    events: Arc<Mutex<Vec<TimingEvent>>>,
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Timing {
    /// An empty recorder.
    pub fn new() -> Timing {
        Timing::default()
    }

    /// Record an instantaneous event now.
    pub fn add(&self, name: &str, details: Map<String, Value>) {
        let ev = TimingEvent {
            name: name.to_owned(),
            start: now_f64(),
            stop: None,
            details,
        };
        if let Ok(mut v) = self.events.lock() {
            v.push(ev);
        }
    }

    /// Record an event that began at `start` (epoch seconds) and ends now.
    pub fn add_span(&self, name: &str, start: f64, details: Map<String, Value>) {
        let ev = TimingEvent {
            name: name.to_owned(),
            start,
            stop: Some(now_f64()),
            details,
        };
        if let Ok(mut v) = self.events.lock() {
            v.push(ev);
        }
    }

    /// Record a frame we sent: details are `_side` plus the command's own keys (Python's form).
    pub fn ws_send(&self, side: &str, frame: &str) {
        let mut details = match serde_json::from_str::<Value>(frame) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        details.insert("_side".into(), json!(side));
        self.add("ws_send", details);
    }

    /// Record a frame we received: details are `_side` and `message`.
    pub fn ws_receive(&self, side: &str, frame: &str) {
        let message = serde_json::from_str::<Value>(frame).unwrap_or_else(|_| json!(frame));
        let mut details = Map::new();
        details.insert("_side".into(), json!(side));
        details.insert("message".into(), message);
        self.add("ws_receive", details);
    }

    /// A copy of everything recorded so far.
    pub fn events(&self) -> Vec<TimingEvent> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The JSON document (`--dump-timing` format).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.events()
                .into_iter()
                .map(|e| json!({"name": e.name, "start": e.start, "stop": e.stop, "details": e.details}))
                .collect(),
        )
    }

    /// Write the JSON document to `path` (indent 1, trailing newline, like Python).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_python_shape() {
        let t = Timing::new();
        t.ws_send("abc", r#"{"type":"bind","id":"0001"}"#);
        t.ws_receive("abc", r#"{"type":"ack","id":"0001"}"#);
        let v = t.to_json();
        assert_eq!(v[0]["name"], "ws_send");
        assert_eq!(v[0]["details"]["type"], "bind");
        assert_eq!(v[0]["details"]["_side"], "abc");
        assert_eq!(v[0]["stop"], Value::Null);
        assert_eq!(v[1]["details"]["message"]["type"], "ack");
        assert!(v[1]["start"].as_f64().unwrap() >= v[0]["start"].as_f64().unwrap());
    }
}
