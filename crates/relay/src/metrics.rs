//! The relay's Prometheus metrics ([`RelayMetrics`]), registered under `wormhole_relay_`.
//!
//! Owns: the metric handles (cheap atomics shared by every connection task) and their names.
//! Must not: serve HTTP (the `wormhole-server` binary does) or decide anything.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::usage::Mood;

/// Why the relay refused or cut a connection (the `reason` label of `wormhole_relay_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `--max-connections` reached.
    Connections,
    /// `--max-connections-per-ip` reached.
    ConnectionsPerIp,
    /// A pair reached `--max-bytes`.
    Bytes,
    /// A pair reached `--max-time`.
    Time,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connections => "connections",
            Reason::ConnectionsPerIp => "connections_per_ip",
            Reason::Bytes => "max_bytes",
            Reason::Time => "max_time",
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

/// Label set `{mood="…"}`: how a relay session (a pair, or a connection left alone) ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MoodLabel {
    /// The usage mood (`happy`, `lonely`, `errory`, `impatient`, `redundant`, `empty`).
    pub mood: &'static str,
}

/// Every metric of the relay. Cloning shares the values.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    /// Client connections open now (handshaking, waiting or relaying).
    pub connections: Gauge,
    /// Pairs relaying now.
    pub pairs_active: Gauge,
    /// Sessions ended, by mood (one per pair, or per connection that was never paired).
    pub sessions: Family<MoodLabel, Counter>,
    /// Bytes relayed by finished pairs, both directions.
    pub bytes: Counter,
    /// Refused connections and cut pairs, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
}

impl RelayMetrics {
    /// Count one refusal.
    pub fn reject(&self, reason: Reason) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Refusals so far for `reason`.
    pub fn rejected_count(&self, reason: Reason) -> u64 {
        self.rejected.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Count an ended session.
    pub fn ended(&self, mood: Mood) {
        self.sessions
            .get_or_create(&MoodLabel { mood: mood.as_str() })
            .inc();
    }

    /// Register every metric under `wormhole_relay_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("wormhole_relay");
        r.register(
            "connections",
            "Client connections open now",
            self.connections.clone(),
        );
        r.register("pairs_active", "Pairs relaying now", self.pairs_active.clone());
        r.register(
            "sessions",
            "Relay sessions ended, by mood (happy: a pair that relayed)",
            self.sessions.clone(),
        );
        r.register("bytes", "Bytes relayed by finished pairs", self.bytes.clone());
        r.register(
            "rejected",
            "Connections refused and pairs cut at a limit, by reason",
            self.rejected.clone(),
        );
    }
}
