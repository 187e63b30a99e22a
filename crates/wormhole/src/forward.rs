//! `wormhole forward`'s engine: TCP port forwarding over a dilated wormhole, on fowl's wire
//! (the messages and policy are `wormhole_proto::forward`'s; docs/forward.md).
//!
//! A [`Forwarder`] listens for the peer's `fowl-commands` and `fowl` subchannels, asks the
//! peer to listen for each of our services, listens locally for each peer service the peer asks
//! for and we allow, and pumps each forwarded connection through its own subchannel.
//!
//! Owns: local listeners and connections, the subchannels of each, and the events that say what
//! happened. Must not: end the Dilation connection or the wormhole on anything a peer sends or
//! a local connection does: a failure ends only the one forwarded connection (or request) it
//! belongs to, and is reported as a [`ForwardEvent`].

mod control;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub use wormhole_proto::forward::{
    APPID, ClientSpec, Policy, PolicyError, ServiceSpec, SpecError, our_versions, peer_half_closes,
    peer_speaks_fowl,
};

use crate::dilation::{Dilated, DilationError, Subchannel};

/// What a forwarder reports; the names follow fowld's messages (docs/forward.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardEvent {
    /// We listen here for the peer's service `name` (fowld `listening`).
    Listening {
        /// The service.
        name: String,
        /// Our local port: connect to it to reach the peer's service.
        port: u16,
    },
    /// The peer listens for our service `name`; its connections come to `port` here (fowld
    /// `awaiting-connect`).
    AwaitingConnect {
        /// The service.
        name: String,
        /// Where the service must listen on this side.
        port: u16,
    },
    /// A listener for `name` could not be set up, on either side (fowld `listening-failed`).
    ListeningFailed {
        /// The service.
        name: String,
        /// Why.
        reason: String,
    },
    /// A local client connected to one of our listeners (fowld `outgoing-connection`).
    OutgoingConnection {
        /// The service.
        name: String,
        /// The connection's number in this session.
        id: u64,
    },
    /// The peer opened a connection to our service (fowld `incoming-connection`).
    IncomingConnection {
        /// The service.
        name: String,
        /// The connection's number in this session.
        id: u64,
    },
    /// The peer could not reach its service for connection `id` (fowld `remote-connect-failed`).
    RemoteConnectFailed {
        /// The connection.
        id: u64,
        /// The peer's reason.
        reason: String,
    },
    /// Bytes of connection `id` moved (only with [`ForwarderOptions::byte_events`]): `from_local`
    /// read from the local socket and sent to the peer (fowld `bytes-in`), else the reverse
    /// (`bytes-out`).
    Bytes {
        /// The connection.
        id: u64,
        /// The direction.
        from_local: bool,
        /// How many.
        n: u64,
    },
    /// Connection `id` ended: `error` is `None` when both sides closed cleanly (fowld
    /// `*-done`), else why (fowld `*-lost`).
    Closed {
        /// The connection.
        id: u64,
        /// The service.
        name: String,
        /// Whether the peer opened it.
        incoming: bool,
        /// Bytes read from the local socket (sent to the peer).
        bytes_in: u64,
        /// Bytes written to the local socket (received from the peer).
        bytes_out: u64,
        /// Why it ended, if not cleanly.
        error: Option<String>,
    },
    /// Something the peer sent that we could not use; only its subchannel was affected.
    Error {
        /// What happened.
        message: String,
    },
}

/// A forwarder's settings.
#[derive(Debug, Clone, Default)]
pub struct ForwarderOptions {
    /// Report every chunk moved as [`ForwardEvent::Bytes`] (fowld does; humans need totals).
    pub byte_events: bool,
    /// The peer passes half-closes on (its versions list `half-close`:
    /// `wormhole_proto::forward::peer_half_closes`). Without it (fowl), the peer's CLOSE ends
    /// the forwarded connection both ways at once, as fowl means it: its side no longer reads.
    pub peer_half_close: bool,
}

/// The state the forwarder's tasks share.
pub(crate) struct Shared {
    pub(crate) dilated: Arc<Dilated>,
    pub(crate) policy: Mutex<Policy>,
    events: mpsc::UnboundedSender<ForwardEvent>,
    next_id: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Our requests' control subchannels: fowl stops listening for a service when the
    /// subchannel its request came on closes, so they stay open for the whole session.
    requests: Mutex<Vec<Subchannel>>,
    pub(crate) options: ForwarderOptions,
}

impl Shared {
    pub(crate) fn emit(&self, e: ForwardEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn policy(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawn a task that [`Forwarder::stop`] ends.
    pub(crate) fn spawn<F>(&self, f: F) -> AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let h = tokio::spawn(f).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.clone());
        h
    }

    pub(crate) fn keep_request(&self, sub: Subchannel) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).push(sub);
    }
}

/// Port forwarding over one dilated wormhole (fowl's `FowlCoop`). Dropping it stops its
/// listeners; [`Forwarder::stop`] does the same explicitly.
pub struct Forwarder {
    shared: Arc<Shared>,
}

impl Forwarder {
    /// Start serving the peer: accept its `fowl-commands` and `fowl` subchannels under
    /// `policy`. Call it before (or right after) the connection is up; events go to `events`.
    pub async fn start(
        dilated: Arc<Dilated>,
        policy: Policy,
        options: ForwarderOptions,
        events: mpsc::UnboundedSender<ForwardEvent>,
    ) -> Result<Forwarder, DilationError> {
        let commands = dilated
            .listen(wormhole_proto::forward::SUBPROTOCOL_COMMANDS)
            .await?;
        let streams = dilated
            .listen(wormhole_proto::forward::SUBPROTOCOL_STREAM)
            .await?;
        let shared = Arc::new(Shared {
            dilated,
            policy: Mutex::new(policy),
            events,
            next_id: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            options,
        });
        let _ = shared.spawn(control::serve_commands(shared.clone(), commands));
        let _ = shared.spawn(stream::serve_streams(shared.clone(), streams));
        Ok(Forwarder { shared })
    }

    /// Ask the peer to listen for each of our services (those given to [`Forwarder::start`]);
    /// call it once the wormhole is dilated.
    pub fn request_services(&self) {
        let services: Vec<ServiceSpec> = self.shared.policy().services().cloned().collect();
        for s in services {
            let _ = self.shared.spawn(control::request(self.shared.clone(), s));
        }
    }

    /// Add a service of ours and ask the peer to listen for it (fowld's `remote` command).
    pub fn add_service(&self, spec: ServiceSpec) -> Result<(), PolicyError> {
        self.shared.policy().add_service(spec.clone())?;
        let _ = self.shared.spawn(control::request(self.shared.clone(), spec));
        Ok(())
    }

    /// Allow one more of the peer's services (fowld's `local` command).
    pub fn allow(&self, spec: ClientSpec) -> Result<(), PolicyError> {
        self.shared.policy().allow(spec)
    }

    /// Stop listening, end every forwarded connection and our control subchannels.
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            t.abort();
        }
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}
