//! The mailbox server's Prometheus metrics ([`MailboxMetrics`]) and the reasons a request is
//! refused ([`Reason`]).
//!
//! Owns: the metric objects (cheap atomic handles, cloned into the engine thread and every
//! connection task) and their names, registered under `wormhole_mailbox_` by
//! [`MailboxMetrics::register`]. Must not: serve HTTP (`crate::ops` does) or decide anything: the
//! code that refuses or counts calls these handles, nothing here reads them back except tests.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::Outcome;

/// Why the mailbox server refused a connection or a command (the `reason` label of
/// `wormhole_mailbox_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `--max-connections` reached (HTTP 503).
    Connections,
    /// `--max-connections-per-ip` reached (welcome `error`).
    ConnectionsPerIp,
    /// `--connections-per-second-per-ip` exceeded (welcome `error`).
    ConnectionRate,
    /// The connection sent commands faster than `--commands-per-second` allows.
    CommandRate,
    /// A frame over `--max-message-size` (connection closed).
    MessageSize,
    /// An `add` to a mailbox holding `--max-mailbox-messages`.
    MailboxFull,
    /// A claim or allocate over `--max-nameplates-per-ip`.
    NameplatesPerIp,
    /// A second claim or allocate on one connection.
    NameplatesPerConnection,
    /// Nothing received for `--idle-timeout` (connection closed).
    Idle,
    /// The connection reached `--max-connection-lifetime` (connection closed).
    Lifetime,
    /// `bind` without an acceptable `submit-permissions` (hashcash).
    Permission,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connections => "connections",
            Reason::ConnectionsPerIp => "connections_per_ip",
            Reason::ConnectionRate => "connection_rate",
            Reason::CommandRate => "command_rate",
            Reason::MessageSize => "message_size",
            Reason::MailboxFull => "mailbox_full",
            Reason::NameplatesPerIp => "nameplates_per_ip",
            Reason::NameplatesPerConnection => "nameplates_per_connection",
            Reason::Idle => "idle",
            Reason::Lifetime => "lifetime",
            Reason::Permission => "permission",
        }
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Label set `{reason="…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: Reason,
}

/// Label set `{mood="…"}` (the usage outcome of a retired mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MoodLabel {
    /// The outcome, as server 0.8.0's usage table names it.
    pub mood: String,
}

/// Every metric of the mailbox server. Cloning shares the underlying values.
#[derive(Debug, Clone)]
pub struct MailboxMetrics {
    /// WebSocket connections open now.
    pub connections: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_opened: Counter,
    /// Applications with at least one nameplate.
    pub apps: Gauge,
    /// Nameplates in use.
    pub nameplates: Gauge,
    /// Mailboxes in use.
    pub mailboxes: Gauge,
    /// Commands received (frames handed to the engine).
    pub commands: Counter,
    /// Messages added to mailboxes.
    pub messages: Counter,
    /// Bytes of message bodies added (hex text, as sent).
    pub message_bytes: Counter,
    /// Mailboxes retired, by usage outcome (`happy` is a completed pair).
    pub pairs: Family<MoodLabel, Counter>,
    /// Seconds per storage commit (one per batch).
    pub commit_seconds: Histogram,
    /// Refused connections and commands, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
}

impl Default for MailboxMetrics {
    fn default() -> Self {
        MailboxMetrics {
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            apps: Gauge::default(),
            nameplates: Gauge::default(),
            mailboxes: Gauge::default(),
            commands: Counter::default(),
            messages: Counter::default(),
            message_bytes: Counter::default(),
            pairs: Family::default(),
            // 50 µs … ~1.6 s
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            rejected: Family::default(),
        }
    }
}

impl MailboxMetrics {
    /// Count one refusal.
    pub fn reject(&self, reason: Reason) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Refusals counted so far for `reason` (tests, logs).
    pub fn rejected_count(&self, reason: Reason) -> u64 {
        self.rejected.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Count a retired mailbox with this outcome.
    pub fn retired(&self, outcome: Outcome) {
        let mood = outcome.as_str().to_owned();
        self.pairs.get_or_create(&MoodLabel { mood }).inc();
    }

    /// Register every metric under `wormhole_mailbox_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("wormhole_mailbox");
        r.register(
            "connections",
            "WebSocket connections open now",
            self.connections.clone(),
        );
        r.register(
            "connections_opened",
            "WebSocket connections accepted since start",
            self.connections_opened.clone(),
        );
        r.register(
            "apps",
            "Applications with at least one nameplate",
            self.apps.clone(),
        );
        r.register("nameplates", "Nameplates in use", self.nameplates.clone());
        r.register("mailboxes", "Mailboxes in use", self.mailboxes.clone());
        r.register("commands", "Commands received", self.commands.clone());
        r.register("messages", "Messages added to mailboxes", self.messages.clone());
        r.register(
            "message_bytes",
            "Bytes of message bodies added (hex, as sent)",
            self.message_bytes.clone(),
        );
        r.register(
            "pairs",
            "Mailboxes retired, by outcome (happy: the two sides completed)",
            self.pairs.clone(),
        );
        r.register(
            "commit_seconds",
            "Duration of each storage commit (one per batch of commands)",
            self.commit_seconds.clone(),
        );
        r.register(
            "rejected",
            "Connections and commands refused, by reason",
            self.rejected.clone(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_reason_labels() {
        let m = MailboxMetrics::default();
        m.reject(Reason::CommandRate);
        m.retired(Outcome::Happy);
        m.commit_seconds.observe(0.001);
        let mut reg = Registry::default();
        m.register(&mut reg);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains("wormhole_mailbox_rejected_total{reason=\"command_rate\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wormhole_mailbox_pairs_total{mood=\"happy\"} 1"),
            "{text}"
        );
        assert_eq!(m.rejected_count(Reason::CommandRate), 1);
    }
}
