//! Ending a run by signal: SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop the flow the same way,
//! and [`Run`] remembers what must still be said when that happens — the open wormhole, and
//! whether the receiver holds an offer it has not answered (then the sender is told, so it
//! stops waiting, as it is when the user says no).
//!
//! Nothing here prints; `main` decides the message and the exit code (128 + signal number).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use wormhole::Wormhole;

/// A signal that ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP (the terminal went away).
    Hangup,
}

impl Signal {
    /// The shell's exit code for a process ended by this signal.
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Signal::Hangup => libc::SIGHUP,
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
        }
    }
}

/// The three signal streams, installed once before any flow runs (so no blocking read can sit
/// between a signal and its handling).
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the handlers.
    pub fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::Interrupt,
            _ = self.term.recv() => Signal::Terminate,
            _ = self.hup.recv() => Signal::Hangup,
        }
    }
}

/// What an interrupted run still owes the peer.
#[derive(Default)]
pub struct Run {
    wormhole: RefCell<Option<Rc<Wormhole>>>,
    /// Set while the receiver is asking the user about an offer.
    offer_pending: Cell<bool>,
    /// Set once a `forward` session is up: a signal is then its normal end, with fowl's
    /// `closing` exchange.
    forwarding: Cell<bool>,
}

/// The reason sent to the sender when the receiver is interrupted before answering.
pub const INTERRUPTED_REASON: &str = "transfer rejected: the receiver was interrupted";

impl Run {
    /// Remember the run's wormhole.
    pub fn opened(&self, w: Wormhole) -> Rc<Wormhole> {
        let w = Rc::new(w);
        *self.wormhole.borrow_mut() = Some(Rc::clone(&w));
        w
    }

    /// Say whether the receiver holds an unanswered offer (set before asking, cleared once
    /// answered). Not a drop guard: dropping the interrupted flow must not clear it.
    pub fn set_offer_pending(&self, pending: bool) {
        self.offer_pending.set(pending);
    }

    /// Say that a `forward` session is up.
    pub fn set_forwarding(&self, on: bool) {
        self.forwarding.set(on);
    }

    /// Whether a signal ended a `forward` session (which is its normal way to end).
    pub fn was_forwarding(&self) -> bool {
        self.forwarding.get()
    }

    /// After the flow was dropped: tell the sender about an unanswered offer, then close the
    /// wormhole (each bounded, so a dead server cannot hold the exit).
    pub async fn abandon(&self) {
        let Some(w) = self.wormhole.borrow_mut().take() else {
            return;
        };
        let bound = Duration::from_secs(5);
        if self.offer_pending.get() {
            let _ = tokio::time::timeout(bound, wormhole::transfer::reject(&*w, INTERRUPTED_REASON)).await;
        }
        if self.forwarding.get() {
            let sent = tokio::time::timeout(bound, w.send_message(crate::forward::closing_message())).await;
            if matches!(sent, Ok(Ok(()))) {
                crate::forward::wait_for_closing(&w, crate::forward::CLOSE_WAIT_ON_SIGNAL).await;
            }
        }
        let _ = tokio::time::timeout(bound, w.close()).await;
    }
}
