//! Interactive code entry wired to the library's `CodeInputHelper` (rustyline on a blocking
//! thread, each completion a bounded blocking call into the async helper).
//!
//! Pure delegation; the flows live in `send`, `receive` and `ssh`.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::runtime::Handle;
use wormhole::{CodeInputHelper, Wormhole};

use crate::code_input::{InputBackend, read_code};

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
pub async fn input_code(w: &Wormhole) -> Result<bool> {
    let helper = w.input_code().await?;
    let handle = Handle::current();
    let used = tokio::task::spawn_blocking(move || read_code(HelperBackend { helper, handle }))
        .await
        .context("code entry")??;
    Ok(used)
}
