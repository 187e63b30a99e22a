//! The [`Wormhole`] handle: the public API (the Rust form of Python's `wormhole.create` API).
//! Every method takes `&self` and talks to the driver task over channels, so one task may send
//! while another awaits [`Wormhole::get_message`].

use std::sync::Arc;

use rand::RngCore;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use wormhole_proto::key::derive_key_for_purpose;
use wormhole_proto::machine::{
    Boss, Config, Mood, SerializedWormholeWithKeys, StateError, Welcome, WormholeError,
};

use crate::dilation::{Dilated, DilationError, DilationOptions};
use crate::driver::{self, Outputs, Request};
use crate::events::Events;
use crate::input::CodeInputHelper;
use crate::journal::{Journal, JournalState};
use crate::net::NetworkOptions;
use crate::state::Snapshot;
use crate::timing::Timing;

/// The default mailbox server (Python 0.24.0, Go and Rust clients).
pub const DEFAULT_MAILBOX_URL: &str = "ws://relay.magic-wormhole.io:4000/v1";
/// The file-transfer application id.
pub const DEFAULT_APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

/// Options for [`Wormhole::create`].
#[derive(Debug, Clone)]
pub struct WormholeOptions {
    /// Our `app_versions`, sent to the peer (it gets them from `get_versions`). Default `{}`.
    pub versions: Value,
    /// Record every WebSocket frame (for `--dump-timing`).
    pub timing: Option<Timing>,
    /// `[implementation, version]` sent in `bind`. Default `["rust-wormhole", <crate version>]`.
    pub client_version: Option<(String, String)>,
    /// Extra top-level fields of our `version` message beside `app_versions` (for Dilation:
    /// `can-dilate`, `dilation-abilities`). Default none.
    pub version_fields: serde_json::Map<String, Value>,
    /// Offer Dilation (`can-dilate`, `dilation-abilities` in our version message), so that
    /// [`Wormhole::dilate`] can be called. Python's `create(..., dilation=True)`. Default off.
    pub dilation: bool,
    /// How the servers are reached: TLS trust for `wss://` mailbox URLs.
    pub network: NetworkOptions,
}

impl Default for WormholeOptions {
    fn default() -> Self {
        WormholeOptions {
            versions: Value::Object(Default::default()),
            timing: None,
            client_version: Some(("rust-wormhole".into(), env!("CARGO_PKG_VERSION").into())),
            version_fields: serde_json::Map::new(),
            dilation: false,
            network: NetworkOptions::default(),
        }
    }
}

/// An open wormhole. Cheap to share by reference; dropping it closes the wormhole in the
/// background (call [`Wormhole::close`] to learn the result).
#[derive(Debug)]
pub struct Wormhole {
    side: String,
    appid: String,
    requests: mpsc::UnboundedSender<Request>,
    state: watch::Receiver<Snapshot>,
    messages: Mutex<Option<mpsc::UnboundedReceiver<Vec<u8>>>>,
    input_flags: Arc<std::sync::Mutex<(bool, bool)>>,
    dilation: bool,
    /// The wormhole's dialer, Dilation's default.
    dialer: crate::net::Dialer,
    delegated: bool,
}

pub(crate) async fn call(
    requests: &mpsc::UnboundedSender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<(), WormholeError>>) -> Request,
) -> Result<(), WormholeError> {
    let (tx, rx) = oneshot::channel();
    requests.send(make(tx)).map_err(|_| WormholeError::Closed)?;
    rx.await.map_err(|_| WormholeError::Closed)?
}

fn empty_events() -> Events {
    let (_tx, rx) = mpsc::unbounded_channel();
    Events { rx }
}

fn random_side() -> String {
    let mut b = [0u8; 5];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Wormhole {
    /// Open a wormhole for `appid` through the mailbox server at `mailbox_url`
    /// (e.g. `ws://relay.magic-wormhole.io:4000/v1`). Returns at once; connecting happens in the
    /// background, and a failed first connection surfaces as
    /// [`WormholeError::ServerConnection`] from every waiting call. Must run inside a tokio
    /// runtime.
    pub fn create(appid: &str, mailbox_url: &str, options: WormholeOptions) -> Wormhole {
        Self::spawn(appid, mailbox_url, options, false).0
    }

    /// Like [`Wormhole::create`], in the delegated mode: every event (welcome, code, key,
    /// verifier, versions, each message, closed) also arrives on the returned [`Events`] stream,
    /// and messages are delivered there instead of through `get_message`.
    pub fn create_delegated(appid: &str, mailbox_url: &str, options: WormholeOptions) -> (Wormhole, Events) {
        let (w, ev) = Self::spawn(appid, mailbox_url, options, true);
        let ev = ev.unwrap_or_else(|| {
            let (_tx, rx) = mpsc::unbounded_channel();
            Events { rx }
        });
        (w, ev)
    }

    /// Like [`Wormhole::create_delegated`], in journal mode (docs/journal.md): after every
    /// input that changes the wormhole's state, `journal`'s callback is given the new state and
    /// the events it produced, and nothing (no frame to the server, no event, no reply to a call
    /// such as [`Wormhole::send_message`]) leaves before it returned. Refused with `dilation`.
    pub fn create_journaled(
        appid: &str,
        mailbox_url: &str,
        options: WormholeOptions,
        journal: Journal,
    ) -> Result<(Wormhole, Events), StateError> {
        if options.dilation {
            return Err(StateError::JournalUnsupported("dilation"));
        }
        let (w, ev) = Self::spawn_with(appid, mailbox_url, options, true, Some(journal));
        Ok((w, ev.unwrap_or_else(empty_events)))
    }

    /// Restore a wormhole saved by [`Wormhole::serialize`] or by a journal checkpoint, in the
    /// delegated mode (with `journal`: in journal mode). It reconnects to the saved mailbox URL
    /// and carries on: unechoed messages are sent again, the peer's messages already delivered
    /// are not delivered again, and events already delivered (welcome, code, key, verifier,
    /// versions) are not repeated (their values are available from the `get_*` calls). Restore
    /// each state once: a second restore of the same state is detected where the mailbox shows
    /// it, and fails with [`WormholeError::StateReused`].
    pub fn from_serialized(
        state: SerializedWormholeWithKeys,
        journal: Option<Journal>,
    ) -> Result<(Wormhole, Events), StateError> {
        let url = state.mailbox_url().to_owned();
        let last = journal.as_ref().map(|_| state.to_json());
        let boss = Boss::restore(
            state.machine().clone(),
            Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
        )?;
        let snapshot = Snapshot {
            code: boss.code().map(str::to_owned),
            key: boss.key(),
            verifier: boss.verifier(),
            versions: boss.peer_versions().map(|v| {
                v.get("app_versions")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Default::default()))
            }),
            ..Snapshot::default()
        };
        let side = boss.side().to_owned();
        let appid = boss.appid().to_owned();
        let journal = journal.map(|j| JournalState::new(j, last));
        let (w, ev) = Self::launch(
            boss,
            side,
            &appid,
            &url,
            (None, NetworkOptions::default()),
            false,
            true,
            snapshot,
            journal,
        );
        Ok((w, ev.unwrap_or_else(empty_events)))
    }

    /// The wormhole's state now, keys included (docs/journal.md), for
    /// [`Wormhole::from_serialized`]. Delegated mode only ([`StateError::AwaitingMode`]), not
    /// after [`Wormhole::dilate`] ([`StateError::Dilated`]), not during interactive code input,
    /// not once closed. The state covers every event already put on the event stream, whether
    /// or not the application has taken it yet; journal mode gives the exact correspondence.
    pub async fn serialize(&self) -> Result<SerializedWormholeWithKeys, StateError> {
        if !self.delegated {
            return Err(StateError::AwaitingMode);
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Serialize(tx))
            .map_err(|_| StateError::Closed)?;
        rx.await.map_err(|_| StateError::Closed)?
    }

    /// Serialize (as [`Wormhole::serialize`]) and stop: the connection is dropped without a
    /// `close`, so the mailbox keeps our messages and collects the peer's until the state is
    /// restored. The event stream ends without [`crate::Event::Closed`]. On refusal the
    /// wormhole goes on.
    pub async fn suspend(&self) -> Result<SerializedWormholeWithKeys, StateError> {
        if !self.delegated {
            return Err(StateError::AwaitingMode);
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Suspend(tx))
            .map_err(|_| StateError::Closed)?;
        rx.await.map_err(|_| StateError::Closed)?
    }

    fn spawn(
        appid: &str,
        mailbox_url: &str,
        options: WormholeOptions,
        delegated: bool,
    ) -> (Wormhole, Option<Events>) {
        Self::spawn_with(appid, mailbox_url, options, delegated, None)
    }

    fn spawn_with(
        appid: &str,
        mailbox_url: &str,
        options: WormholeOptions,
        delegated: bool,
        journal: Option<Journal>,
    ) -> (Wormhole, Option<Events>) {
        let side = random_side();
        let dilation = options.dilation;
        let mut version_fields = options.version_fields;
        if dilation {
            for (k, v) in wormhole_proto::dilation::manager::version_fields() {
                version_fields.entry(k).or_insert(v);
            }
        }
        let cfg = Config {
            appid: appid.to_owned(),
            side: side.clone(),
            versions: options.versions,
            client_version: options.client_version,
        };
        let boss = Boss::new(
            cfg,
            Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
        )
        .with_version_fields(version_fields);
        let journal = journal.map(|j| JournalState::new(j, None));
        Self::launch(
            boss,
            side,
            appid,
            mailbox_url,
            (options.timing, options.network),
            dilation,
            delegated,
            Snapshot::default(),
            journal,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        boss: Boss,
        side: String,
        appid: &str,
        mailbox_url: &str,
        (timing, network): (Option<Timing>, NetworkOptions),
        dilation: bool,
        delegated: bool,
        snapshot: Snapshot,
        journal: Option<JournalState>,
    ) -> (Wormhole, Option<Events>) {
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(snapshot);
        // Delegated: everything, messages included, goes to the event stream; otherwise messages
        // go to `get_message` and there is no event stream.
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = if delegated {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(Events { rx }))
        } else {
            (None, None)
        };
        let outputs = Outputs {
            state: state_tx,
            messages: (!delegated).then_some(msg_tx),
            events: ev_tx,
            timing,
            journal,
        };
        let dialer = network.dialer.clone();
        tokio::spawn(driver::run(
            boss,
            mailbox_url.to_owned(),
            network,
            req_rx,
            outputs,
        ));
        let w = Wormhole {
            side,
            appid: appid.to_owned(),
            requests: req_tx,
            state: state_rx,
            messages: Mutex::new((!delegated).then_some(msg_rx)),
            input_flags: Arc::new(std::sync::Mutex::new((false, false))),
            dilation,
            dialer,
            delegated,
        };
        (w, events)
    }

    /// Our side id (10 hex chars), the same across reconnections.
    pub fn side(&self) -> &str {
        &self.side
    }

    /// The application id.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Ask the server for a nameplate and make a code of `length` words
    /// (2 is the CLI default). Then await [`Wormhole::get_code`].
    pub async fn allocate_code(&self, length: usize) -> Result<(), WormholeError> {
        call(&self.requests, |r| Request::AllocateCode(length, r)).await
    }

    /// Use a code the user typed, e.g. `"4-purple-sausages"` (`KeyFormat` error if malformed).
    pub async fn set_code(&self, code: &str) -> Result<(), WormholeError> {
        call(&self.requests, |r| Request::SetCode(code.to_owned(), r)).await
    }

    /// Begin interactive code entry; returns the completion helper.
    pub async fn input_code(&self) -> Result<CodeInputHelper, WormholeError> {
        call(&self.requests, Request::InputCode).await?;
        Ok(CodeInputHelper {
            requests: self.requests.clone(),
            state: self.state.clone(),
            chosen: self.input_flags.clone(),
        })
    }

    async fn wait<T>(&self, pick: impl Fn(&Snapshot) -> Option<T>) -> Result<T, WormholeError> {
        let mut rx = self.state.clone();
        let s = rx
            .wait_for(|s| pick(s).is_some() || s.closed.is_some())
            .await
            .map_err(|_| WormholeError::Closed)?;
        match pick(&s) {
            Some(v) => Ok(v),
            None => Err(s.closed_error().unwrap_or(WormholeError::Closed)),
        }
    }

    /// The server's welcome (first connection).
    pub async fn get_welcome(&self) -> Result<Welcome, WormholeError> {
        self.wait(|s| s.welcome.clone()).await
    }

    /// The code, once allocated, set or typed.
    pub async fn get_code(&self) -> Result<String, WormholeError> {
        self.wait(|s| s.code.clone()).await
    }

    /// The shared key, as soon as SPAKE2 finishes (before the peer proved it has it).
    pub async fn get_unverified_key(&self) -> Result<[u8; 32], WormholeError> {
        self.wait(|s| s.key).await
    }

    /// The verifier, once the peer's first message decrypted (key confirmed). Both sides get
    /// the same value; compare them out of band to rule out a man in the middle.
    pub async fn get_verifier(&self) -> Result<[u8; 32], WormholeError> {
        self.wait(|s| s.verifier).await
    }

    /// The peer's `app_versions`.
    pub async fn get_versions(&self) -> Result<Value, WormholeError> {
        self.wait(|s| s.versions.clone()).await
    }

    /// Derive an application key from the shared key: HKDF-SHA256(key, purpose), `len` bytes.
    /// [`WormholeError::NoKey`] before the key exists.
    pub fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, WormholeError> {
        let key = self.state.borrow().key.ok_or(WormholeError::NoKey)?;
        derive_key_for_purpose(&key, purpose, len).map_err(|_| WormholeError::NoKey)
    }

    /// Queue one message for the peer (sent once the key is confirmed). Messages arrive
    /// whole, once each, in order.
    pub async fn send_message(&self, message: Vec<u8>) -> Result<(), WormholeError> {
        call(&self.requests, |r| Request::Send(message, r)).await
    }

    /// The next message from the peer. After the wormhole closed, the remaining messages are
    /// still returned, then the close error ([`WormholeError::Closed`] after a happy close).
    /// In the delegated mode messages arrive on the event stream instead.
    pub async fn get_message(&self) -> Result<Vec<u8>, WormholeError> {
        let mut guard = self.messages.lock().await;
        let Some(rx) = guard.as_mut() else {
            return Err(WormholeError::Closed);
        };
        match rx.recv().await {
            Some(m) => Ok(m),
            None => Err(self
                .state
                .borrow()
                .closed_error()
                .unwrap_or(WormholeError::Closed)),
        }
    }

    /// Dilate the wormhole (docs/protocol.md §6): once, on a wormhole created with
    /// [`WormholeOptions::dilation`]. Returns at once; the connection is set up in the
    /// background once the peer dilates too (await [`Dilated::when_dilated`]). Keep the
    /// wormhole open while dilated: reconnections are negotiated through the mailbox.
    pub async fn dilate(&self, options: DilationOptions) -> Result<Dilated, DilationError> {
        if !self.dilation {
            return Err(DilationError::NotEnabled);
        }
        let mut options = options;
        if options.dialer.is_none() {
            options.dialer = Some(self.dialer.clone());
        }
        let checked = crate::dilation::driver::validate(&options)?;
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Dilate(tx))
            .map_err(|_| DilationError::Wormhole(WormholeError::Closed))?;
        let inbound = rx
            .await
            .map_err(|_| DilationError::Wormhole(WormholeError::Closed))?
            .ok_or(DilationError::AlreadyDilated)?;
        Ok(crate::dilation::driver::start(
            options,
            checked,
            inbound,
            self.requests.clone(),
        ))
    }

    /// Close the wormhole and wait until the server confirmed. `Ok(Mood::Happy)` if the peer
    /// was verified; otherwise `Lonely`, `WrongPassword`, `Server`, `Welcome` or
    /// `ServerConnection` errors. Calling it again returns the same result.
    pub async fn close(&self) -> Result<Mood, WormholeError> {
        let _ = self.requests.send(Request::Close);
        let mut rx = self.state.clone();
        let s = rx
            .wait_for(|s| s.closed.is_some())
            .await
            .map_err(|_| WormholeError::Closed)?;
        s.closed.clone().unwrap_or(Err(WormholeError::Closed))
    }
}
