//! The code-input helper returned by [`crate::Wormhole::input_code`] (docs/protocol.md §2.10): lists
//! nameplates from the server, completes nameplates and PGP words, and commits the nameplate then
//! the words. A line editor (the CLI's) sits on top; this type does no terminal I/O.

use tokio::sync::{mpsc, watch};
use wormhole_proto::machine::WormholeError;
use wormhole_proto::wordlist::get_completions;

use crate::driver::Request;
use crate::state::Snapshot;
use crate::wormhole::call;

/// Interactive code entry. Order: (`refresh_nameplates` / `get_nameplate_completions`)* →
/// `choose_nameplate` → `when_wordlist_is_available` → (`get_word_completions`)* → `choose_words`.
#[derive(Debug, Clone)]
pub struct CodeInputHelper {
    pub(crate) requests: mpsc::UnboundedSender<Request>,
    pub(crate) state: watch::Receiver<Snapshot>,
    pub(crate) chosen: std::sync::Arc<std::sync::Mutex<(bool, bool)>>,
}

impl CodeInputHelper {
    fn flags(&self) -> (bool, bool) {
        self.chosen.lock().map(|g| *g).unwrap_or((true, true))
    }

    /// Ask the server for the current nameplates and wait for the answer.
    pub async fn refresh_nameplates(&self) -> Result<(), WormholeError> {
        let before = self.state.borrow().nameplates_generation;
        call(&self.requests, Request::RefreshNameplates).await?;
        let mut rx = self.state.clone();
        let s = rx
            .wait_for(|s| s.nameplates_generation > before || s.closed.is_some())
            .await
            .map_err(|_| WormholeError::Closed)?;
        match s.closed_error() {
            Some(e) if s.nameplates_generation == before => Err(e),
            _ => Ok(()),
        }
    }

    /// Completions of a partly typed nameplate: `"<id>-"` for every listed nameplate starting
    /// with `prefix` (from the last [`refresh_nameplates`](Self::refresh_nameplates)), sorted.
    pub fn get_nameplate_completions(&self, prefix: &str) -> Result<Vec<String>, WormholeError> {
        if self.flags().0 {
            return Err(WormholeError::AlreadyChoseNameplate);
        }
        let mut v: Vec<String> = self
            .state
            .borrow()
            .nameplates
            .iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| format!("{n}-"))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// Commit the nameplate (the server claims it for us).
    pub async fn choose_nameplate(&self, nameplate: &str) -> Result<(), WormholeError> {
        call(&self.requests, |r| {
            Request::ChooseNameplate(nameplate.to_owned(), r)
        })
        .await?;
        if let Ok(mut g) = self.chosen.lock() {
            g.0 = true;
        }
        Ok(())
    }

    /// Wait until word completion is available (the nameplate was claimed).
    pub async fn when_wordlist_is_available(&self) -> Result<(), WormholeError> {
        if !self.flags().0 {
            return Err(WormholeError::MustChooseNameplateFirst);
        }
        let mut rx = self.state.clone();
        let s = rx
            .wait_for(|s| s.wordlist_ready || s.closed.is_some())
            .await
            .map_err(|_| WormholeError::Closed)?;
        match (s.wordlist_ready, s.closed_error()) {
            (false, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Completions of the words typed after `NN-` (two-word codes), as Python's.
    pub fn get_word_completions(&self, prefix: &str) -> Result<Vec<String>, WormholeError> {
        match self.flags() {
            (false, _) => Err(WormholeError::MustChooseNameplateFirst),
            (true, true) => Err(WormholeError::AlreadyChoseWords),
            (true, false) => {
                let mut v = get_completions(prefix, 2);
                v.sort();
                Ok(v)
            }
        }
    }

    /// Commit the words; the code is then `<nameplate>-<words>`.
    pub async fn choose_words(&self, words: &str) -> Result<(), WormholeError> {
        call(&self.requests, |r| Request::ChooseWords(words.to_owned(), r)).await?;
        if let Ok(mut g) = self.chosen.lock() {
            g.1 = true;
        }
        Ok(())
    }
}
