//! Interactive code entry (`Enter receive wormhole code: `) with Tab completion of nameplates
//! and words, as docs/protocol.md §2.10 describes the Python CLI.
//!
//! [`CodeInputter`] holds the commit rules (the first completion after a `-` claims the
//! nameplate; deleting back past it is refused) over a blocking [`InputBackend`], so the rules are
//! unit-tested with a fake. [`read_code`] runs rustyline on the calling thread; callers run it on
//! a blocking thread and implement the backend by blocking on the async wormhole.

use std::cell::RefCell;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

/// The prompt, as in the Python CLI.
pub const PROMPT: &str = "Enter receive wormhole code: ";

/// The blocking operations code entry needs from the wormhole's input helper.
pub trait InputBackend {
    /// Ask the server for the current nameplates (results may arrive later).
    fn refresh_nameplates(&mut self);
    /// Completions of a partial nameplate, each `"<id>-"`.
    fn nameplate_completions(&mut self, prefix: &str) -> Vec<String>;
    /// Commit to a nameplate (claims it).
    fn choose_nameplate(&mut self, nameplate: &str) -> Result<(), String>;
    /// Block until the word list is known (after the claim).
    fn wait_for_wordlist(&mut self);
    /// Completions of the words typed after the nameplate, each the whole word part.
    fn word_completions(&mut self, words: &str) -> Vec<String>;
    /// Commit to the words; this sets the code.
    fn choose_words(&mut self, words: &str) -> Result<(), String>;
}

/// Why code entry failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeInputError {
    /// The text has no `-`. Type the nameplate, a dash, then the words.
    #[error("incomplete wormhole code")]
    Incomplete,
    /// The user edited the nameplate after it was claimed. Run the command again.
    #[error("nameplate ({0}-) already entered, cannot go back")]
    AlreadyInputNameplate(String),
    /// The wormhole refused the nameplate or the words.
    #[error("{0}")]
    Rejected(String),
    /// The terminal was closed or the user pressed Ctrl-C/Ctrl-D.
    #[error("code entry interrupted")]
    Interrupted,
    /// The terminal could not be read.
    #[error("reading the code: {0}")]
    Terminal(String),
}

/// The commit rules of code entry.
pub struct CodeInputter<B> {
    backend: B,
    committed: Option<String>,
    used_completion: bool,
}

impl<B: InputBackend> CodeInputter<B> {
    /// Start with nothing committed.
    pub fn new(backend: B) -> Self {
        CodeInputter {
            backend,
            committed: None,
            used_completion: false,
        }
    }

    /// Whether Tab was ever pressed.
    pub fn used_completion(&self) -> bool {
        self.used_completion
    }

    /// Completions for the whole text typed so far (sorted, full strings).
    pub fn complete(&mut self, text: &str) -> Result<Vec<String>, CodeInputError> {
        self.used_completion = true;
        let split = text.split_once('-');
        if let Some(committed) = &self.committed
            && split.map(|(n, _)| n) != Some(committed.as_str())
        {
            return Err(CodeInputError::AlreadyInputNameplate(committed.clone()));
        }
        let mut out = match split {
            None => {
                self.backend.refresh_nameplates();
                self.backend.nameplate_completions(text)
            }
            Some((nameplate, words)) => {
                if self.committed.is_none() {
                    self.backend
                        .choose_nameplate(nameplate)
                        .map_err(CodeInputError::Rejected)?;
                    self.committed = Some(nameplate.to_owned());
                    self.backend.wait_for_wordlist();
                }
                self.backend
                    .word_completions(words)
                    .into_iter()
                    .map(|w| format!("{nameplate}-{w}"))
                    .collect()
            }
        };
        out.sort();
        Ok(out)
    }

    /// Return was pressed on `text`: commit the nameplate (if not yet) and the words.
    pub fn finish(&mut self, text: &str) -> Result<(), CodeInputError> {
        let (nameplate, words) = text.split_once('-').ok_or(CodeInputError::Incomplete)?;
        match &self.committed {
            Some(c) if c != nameplate => {
                return Err(CodeInputError::AlreadyInputNameplate(c.clone()));
            }
            Some(_) => {}
            None => {
                self.backend
                    .choose_nameplate(nameplate)
                    .map_err(CodeInputError::Rejected)?;
                self.committed = Some(nameplate.to_owned());
            }
        }
        self.backend.choose_words(words).map_err(CodeInputError::Rejected)
    }
}

/// The rustyline helper: completion over the whole line (no word delimiters).
struct CodeHelper<B> {
    inputter: RefCell<CodeInputter<B>>,
}

impl<B: InputBackend> Completer for CodeHelper<B> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> Result<(usize, Vec<Pair>), ReadlineError> {
        let text = line.get(..pos).unwrap_or(line);
        // A refused edit shows no candidates; `finish` reports the error on Return.
        let found = self.inputter.borrow_mut().complete(text).unwrap_or_default();
        Ok((
            0,
            found
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl<B> Hinter for CodeHelper<B> {
    type Hint = String;
}
impl<B> Highlighter for CodeHelper<B> {}
impl<B> Validator for CodeHelper<B> {}
impl<B: InputBackend> Helper for CodeHelper<B> {}

/// Read a code from the terminal with completion, commit it through `backend`, and say whether
/// Tab was used (the caller prints a hint when it was not).
pub fn read_code<B: InputBackend>(backend: B) -> Result<bool, CodeInputError> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<CodeHelper<B>, rustyline::history::DefaultHistory> =
        Editor::with_config(config).map_err(|e| CodeInputError::Terminal(e.to_string()))?;
    editor.set_helper(Some(CodeHelper {
        inputter: RefCell::new(CodeInputter::new(backend)),
    }));
    let line = match editor.readline(PROMPT) {
        Ok(line) => line,
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
            return Err(CodeInputError::Interrupted);
        }
        Err(e) => return Err(CodeInputError::Terminal(e.to_string())),
    };
    let helper = editor
        .helper_mut()
        .ok_or_else(|| CodeInputError::Terminal("no completion helper".to_owned()))?;
    let inputter = helper.inputter.get_mut();
    inputter.finish(line.trim())?;
    Ok(inputter.used_completion())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
    }

    impl InputBackend for &mut Fake {
        fn refresh_nameplates(&mut self) {
            self.log.push("refresh".into());
        }
        fn nameplate_completions(&mut self, prefix: &str) -> Vec<String> {
            ["12", "3", "15"]
                .iter()
                .filter(|n| n.starts_with(prefix))
                .map(|n| format!("{n}-"))
                .collect()
        }
        fn choose_nameplate(&mut self, nameplate: &str) -> Result<(), String> {
            if nameplate.chars().all(|c| c.is_ascii_digit()) && !nameplate.is_empty() {
                self.log.push(format!("claim {nameplate}"));
                Ok(())
            } else {
                Err(format!("bad nameplate {nameplate:?}"))
            }
        }
        fn wait_for_wordlist(&mut self) {
            self.log.push("wait".into());
        }
        fn word_completions(&mut self, words: &str) -> Vec<String> {
            ["purple-", "puffin-"]
                .iter()
                .filter(|w| w.starts_with(words))
                .map(|w| (*w).to_owned())
                .collect()
        }
        fn choose_words(&mut self, words: &str) -> Result<(), String> {
            self.log.push(format!("words {words}"));
            Ok(())
        }
    }

    #[test]
    fn nameplates_then_commit_then_words() {
        let mut fake = Fake::default();
        let mut c = CodeInputter::new(&mut fake);
        assert_eq!(c.complete("1").unwrap(), vec!["12-", "15-"]);
        assert_eq!(c.complete("12-pu").unwrap(), vec!["12-puffin-", "12-purple-"]);
        assert_eq!(c.complete("12-pur").unwrap(), vec!["12-purple-"]);
        assert!(c.used_completion());
        c.finish("12-purple-sausages").unwrap();
        assert_eq!(
            fake.log,
            vec!["refresh", "claim 12", "wait", "words purple-sausages"]
        );
    }

    #[test]
    fn cannot_go_back_past_the_committed_nameplate() {
        let mut fake = Fake::default();
        let mut c = CodeInputter::new(&mut fake);
        c.complete("12-").unwrap();
        assert_eq!(
            c.complete("1"),
            Err(CodeInputError::AlreadyInputNameplate("12".into()))
        );
        assert_eq!(
            c.finish("13-purple"),
            Err(CodeInputError::AlreadyInputNameplate("12".into()))
        );
    }

    #[test]
    fn return_without_tab_commits_both() {
        let mut fake = Fake::default();
        let mut c = CodeInputter::new(&mut fake);
        assert_eq!(c.finish("4"), Err(CodeInputError::Incomplete));
        c.finish("4-a-b").unwrap();
        assert!(!c.used_completion());
        assert_eq!(fake.log, vec!["claim 4", "words a-b"]);
    }

    #[test]
    fn bad_nameplate_is_rejected() {
        let mut fake = Fake::default();
        let mut c = CodeInputter::new(&mut fake);
        assert!(matches!(c.finish("x-a"), Err(CodeInputError::Rejected(_))));
    }
}
