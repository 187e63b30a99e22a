//! The real wormhole behind the CLI: [`Session`] for `wormhole::Wormhole`, and interactive code
//! entry wired to its `CodeInputHelper` (rustyline on a blocking thread, each completion a
//! bounded blocking call into the async helper).
//!
//! Pure delegation; the flows live in `send`, `receive` and `ssh`.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::runtime::Handle;
use wormhole::{CodeInputHelper, Mood, Welcome, Wormhole};

use crate::code_input::{InputBackend, read_code};
use crate::session::Session;

impl Session for Wormhole {
    async fn welcome(&mut self) -> Result<Welcome> {
        Ok(self.get_welcome().await?)
    }
    async fn allocate_code(&mut self, words: usize) -> Result<()> {
        Ok(Wormhole::allocate_code(self, words).await?)
    }
    async fn set_code(&mut self, code: &str) -> Result<()> {
        Ok(Wormhole::set_code(self, code).await?)
    }
    async fn code(&mut self) -> Result<String> {
        Ok(self.get_code().await?)
    }
    async fn unverified_key(&mut self) -> Result<()> {
        self.get_unverified_key().await?;
        Ok(())
    }
    async fn verifier(&mut self) -> Result<[u8; 32]> {
        Ok(self.get_verifier().await?)
    }
    async fn send(&mut self, message: Vec<u8>) -> Result<()> {
        Ok(self.send_message(message).await?)
    }
    async fn receive(&mut self) -> Result<Vec<u8>> {
        Ok(self.get_message().await?)
    }
    async fn close(&mut self) -> Result<Mood> {
        Ok(Wormhole::close(self).await?)
    }
}

/// How long one completion may wait for the server before showing nothing.
const COMPLETION_WAIT: Duration = Duration::from_secs(3);

/// [`InputBackend`] over the library's helper, called from the rustyline thread.
struct HelperBackend {
    helper: CodeInputHelper,
    handle: Handle,
}

impl InputBackend for HelperBackend {
    fn refresh_nameplates(&mut self) {
        let h = self.helper.clone();
        let _ = self
            .handle
            .block_on(async move { tokio::time::timeout(COMPLETION_WAIT, h.refresh_nameplates()).await });
    }
    fn nameplate_completions(&mut self, prefix: &str) -> Vec<String> {
        self.helper.get_nameplate_completions(prefix).unwrap_or_default()
    }
    fn choose_nameplate(&mut self, nameplate: &str) -> Result<(), String> {
        let h = self.helper.clone();
        let n = nameplate.to_owned();
        self.handle
            .block_on(async move { h.choose_nameplate(&n).await })
            .map_err(|e| e.to_string())
    }
    fn wait_for_wordlist(&mut self) {
        let h = self.helper.clone();
        let _ = self.handle.block_on(async move {
            tokio::time::timeout(COMPLETION_WAIT, h.when_wordlist_is_available()).await
        });
    }
    fn word_completions(&mut self, words: &str) -> Vec<String> {
        self.helper.get_word_completions(words).unwrap_or_default()
    }
    fn choose_words(&mut self, words: &str) -> Result<(), String> {
        let h = self.helper.clone();
        let w = words.to_owned();
        self.handle
            .block_on(async move { h.choose_words(&w).await })
            .map_err(|e| e.to_string())
    }
}

/// Ask the user for the code with completion; true if Tab was used.
pub async fn input_code(w: &mut Wormhole) -> Result<bool> {
    let helper = w.input_code().await?;
    let handle = Handle::current();
    let used = tokio::task::spawn_blocking(move || read_code(HelperBackend { helper, handle }))
        .await
        .context("code entry")??;
    Ok(used)
}
