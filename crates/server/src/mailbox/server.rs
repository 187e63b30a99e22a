//! Start-up and the accept loop of the mailbox server.
//!
//! [`MailboxServer::start`] opens the storage, loads the state and starts the engine thread;
//! [`MailboxServer::serve`] accepts connections on a bound listener until the engine stops.
//! [`bind`] creates the listener (dual-stack for `[::]`). Protocol logic lives elsewhere, and
//! so does the choice of storage: the flags name a [`crate::storage::StorageConfig`], which
//! opens whichever backend it names; this file only sees `dyn Storage`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use wormhole_proto::server_msg::Welcome;

use super::connection::{self, Shared};
use super::core::{CoreConfig, HashcashPolicy};
use super::engine::{Engine, EngineInput};
use super::limits::{PerIp, RatePerIp};
use super::tls::TlsTerminator;

use super::state::UsageSettings;
use crate::ServerError;
use crate::config::MailboxArgs;
use crate::metrics::MailboxMetrics;
use crate::storage::StorageHealth;

/// Capacity of the engine's input queue.
const ENGINE_QUEUE: usize = 8192;

/// A started mailbox server (engine running), ready to serve a listener.
#[derive(Debug)]
pub struct MailboxServer {
    shared: Arc<Shared>,
    prune_interval: Duration,
    engine_done: oneshot::Receiver<Result<(), ServerError>>,
    /// Reloads the TLS certificate on `SIGHUP` (watched from `start` on, when a runtime runs).
    reloader: Option<tokio::task::JoinHandle<()>>,
}

fn check_args(args: &MailboxArgs) -> Result<(), ServerError> {
    let bad = |what: &str| Err(ServerError::InvalidArgs(what.to_owned()));
    // Longest accepted time setting (about 115 days): keeps timer arithmetic far from overflow.
    const MAX_SECS: f64 = 1e7;
    let times = [
        args.prune_interval,
        args.channel_expiration,
        args.ping_interval,
        args.idle_timeout,
    ];
    if times.iter().any(|t| *t > MAX_SECS) {
        return bad("time settings must be at most 10000000 seconds");
    }
    if !(args.prune_interval.is_finite() && args.prune_interval > 0.0) {
        return bad("--prune-interval must be a positive number of seconds");
    }
    if !(args.channel_expiration.is_finite() && args.channel_expiration >= 0.0) {
        return bad("--channel-expiration must be zero or more seconds");
    }
    if !(args.ping_interval.is_finite() && args.ping_interval > 0.0) {
        return bad("--ping-interval must be a positive number of seconds");
    }
    if !(args.idle_timeout.is_finite() && args.idle_timeout > 0.0) {
        return bad("--idle-timeout must be a positive number of seconds");
    }
    if !(args.max_connection_lifetime.is_finite() && args.max_connection_lifetime >= 0.0)
        || args.max_connection_lifetime > MAX_SECS
    {
        return bad("--max-connection-lifetime must be 0 (no limit) to 10000000 seconds");
    }
    if !(args.commands_per_second.is_finite() && args.commands_per_second >= 0.0) {
        return bad("--commands-per-second must be zero (no limit) or more");
    }
    if args
        .hashcash_above_rate
        .is_some_and(|r| !(r.is_finite() && r >= 0.0))
    {
        return bad("--hashcash-above-rate must be zero or more connections per second");
    }
    if args.max_message_size < 1024 {
        return bad("--max-message-size must be at least 1024 bytes");
    }
    if args.max_mailbox_messages == 0 || args.max_connections == 0 {
        return bad("--max-mailbox-messages and --max-connections must be at least 1");
    }
    Ok(())
}

impl MailboxServer {
    /// Open the databases, load the committed state and start the engine thread.
    pub fn start(args: &MailboxArgs) -> Result<Self, ServerError> {
        Self::start_with_metrics(args, MailboxMetrics::default())
    }

    /// [`MailboxServer::start`], reporting into `metrics`.
    pub fn start_with_metrics(args: &MailboxArgs, metrics: MailboxMetrics) -> Result<Self, ServerError> {
        check_args(args)?;
        let store = args.storage();
        let storage = store.open()?;
        let welcome = Welcome {
            motd: args.motd.clone(),
            current_cli_version: args.advertise_version.clone(),
            error: args.signal_error.clone(),
            ..Welcome::default()
        };
        let config = CoreConfig {
            welcome,
            allow_list: !args.disallow_list,
            usage: UsageSettings {
                enabled: store.records_usage(),
                blur: args.blur_usage,
            },
            max_mailbox_messages: args.max_mailbox_messages,
            channel_expiration: args.channel_expiration,
            hashcash: args.require_hashcash.map(|bits| HashcashPolicy {
                bits,
                above_rate: args.hashcash_above_rate,
            }),
        };
        let mut engine = Engine::new(storage, config)?.with_metrics(metrics.clone());
        let health = engine.storage_mut().health();
        let (tx, rx) = mpsc::channel(ENGINE_QUEUE);
        if engine.storage_mut().shared() {
            // Other nodes' notices join the engine's queue. A weak sender, so the engine still
            // stops once every connection and the accept loop are gone; a notice that does not
            // fit makes the engine re-read every subscribed mailbox instead of being lost.
            let resync = engine.resync_flag();
            let queue = tx.downgrade();
            engine.storage_mut().inbound(Box::new(move |notice| {
                if let Some(queue) = queue.upgrade()
                    && queue.try_send(EngineInput::Inbound(notice)).is_err()
                {
                    resync.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsTerminator::load(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(ServerError::InvalidArgs(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("mailbox-engine".into())
            .spawn(move || {
                let result = engine.run(rx).map_err(ServerError::from);
                if let Err(e) = &result {
                    tracing::error!("mailbox engine stopped: {e}");
                }
                let _ = done_tx.send(result);
            })
            .map_err(ServerError::Thread)?;
        let shared = Arc::new(Shared {
            engine: tx,
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            max_connections: args.max_connections,
            max_message_size: args.max_message_size,
            out_queue: args.max_mailbox_messages.saturating_add(64),
            ping_interval: Duration::from_secs_f64(args.ping_interval),
            idle_timeout: Duration::from_secs_f64(args.idle_timeout),
            health,
            max_lifetime: (args.max_connection_lifetime > 0.0)
                .then(|| Duration::from_secs_f64(args.max_connection_lifetime)),
            command_rate: args.commands_per_second,
            command_burst: args.command_burst,
            conns_per_ip: PerIp::new(args.max_connections_per_ip),
            conn_rate_per_ip: RatePerIp::new(
                args.connections_per_second_per_ip,
                u32::try_from(args.max_connections_per_ip.max(64)).unwrap_or(u32::MAX),
            ),
            started: tokio::time::Instant::now(),
            held_refusals: PerIp::new(args.held_refusals_per_ip.max(1)),
            trust_real_ip: args.trust_x_real_ip,
            nameplates_per_ip: PerIp::new(args.max_nameplates_per_ip),
            metrics,
            tls,
        });
        // Watch SIGHUP at once, so that a signal sent as soon as `listening on` is printed
        // reloads instead of ending the process (SIGHUP's default).
        let reloader = match &shared.tls {
            Some(t) if tokio::runtime::Handle::try_current().is_ok() => t.reload_on_sighup(),
            _ => None,
        };
        Ok(MailboxServer {
            shared,
            reloader,
            prune_interval: Duration::from_secs_f64(args.prune_interval),
            engine_done: done_rx,
        })
    }

    /// Whether the storage is reachable now (a node without its database refuses new
    /// clients with `503`); for health endpoints.
    pub fn storage_ready(&self) -> bool {
        self.shared.health.ready()
    }

    /// The storage's health flags, to keep after [`MailboxServer::serve`] took the server.
    pub fn storage_health(&self) -> Arc<StorageHealth> {
        self.shared.health.clone()
    }

    /// The `/ready` probe of this server (asks the engine to query its storage).
    pub fn probe(&self) -> crate::ops::Probe {
        crate::ops::Probe::Engine(self.shared.engine.clone())
    }

    /// Accept and serve connections on `listener` until the engine stops (storage failure).
    /// Dropping the returned future stops accepting; open connections end with their tasks.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServerError> {
        let MailboxServer {
            shared,
            prune_interval,
            mut engine_done,
            reloader,
        } = self;
        let reloader = reloader.or_else(|| shared.tls.as_ref().and_then(|t| t.reload_on_sighup()));
        let ticker = {
            let engine = shared.engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(prune_interval);
                loop {
                    tick.tick().await; // the first tick is immediate: prune at start-up
                    if engine.send(EngineInput::Prune).await.is_err() {
                        return;
                    }
                }
            })
        };
        let result = loop {
            tokio::select! {
                done = &mut engine_done => {
                    break done.unwrap_or(Err(ServerError::EngineGone));
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(connection::serve(stream, peer, shared.clone()));
                    }
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        };
        ticker.abort();
        if let Some(r) = reloader {
            r.abort();
        }
        result
    }
}

/// Bind `addr` (`HOST:PORT`; `[::]:PORT` listens on IPv4 and IPv6).
pub async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let mut addrs = tokio::net::lookup_host(addr).await.map_err(err)?;
    let sa: SocketAddr = addrs.next().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "address resolved to nothing",
        ))
    })?;
    let domain = socket2::Domain::for_address(sa);
    let socket =
        socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP)).map_err(err)?;
    if sa.is_ipv6() {
        socket.set_only_v6(false).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&sa.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_flags_are_refused() {
        let mut a = MailboxArgs::defaults();
        a.channel_db = ":memory:".into();
        assert!(check_args(&a).is_ok());
        for (field, value) in [(0, -1.0), (0, f64::NAN), (1, -0.5), (2, 0.0), (3, 1e300)] {
            let mut b = a.clone();
            match field {
                0 => b.prune_interval = value,
                1 => b.channel_expiration = value,
                2 => b.ping_interval = value,
                _ => b.idle_timeout = value,
            }
            assert!(
                matches!(check_args(&b), Err(ServerError::InvalidArgs(_))),
                "{field} {value}"
            );
        }
        let mut b = a.clone();
        b.max_mailbox_messages = 0;
        assert!(check_args(&b).is_err());
    }
}
