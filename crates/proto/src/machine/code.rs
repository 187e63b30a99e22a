//! Code, Allocator, Input and Lister (docs/protocol.md §2.6, §2.10): how the wormhole code becomes
//! known — exactly one of allocate / set / interactive input — plus the nameplate listing the
//! input helper completes against.
//!
//! Word completion itself is pure ([`crate::wordlist::get_completions`]) and needs no state.

use super::error::WormholeError;
use super::rendezvous::Command;
use crate::code::{Code, validate_nameplate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
    Idle,
    Allocating {
        length: usize,
    },
    Inputting {
        nameplate: Option<String>,
        words_chosen: bool,
    },
    Known,
}

/// The code machine (with the allocator, input and lister folded in).
#[derive(Debug)]
pub(crate) struct CodeMachine {
    pub(super) state: State,
    /// A `list` was requested and not yet answered (re-sent after reconnect).
    pub(super) list_outstanding: bool,
}

impl CodeMachine {
    pub(crate) fn new() -> Self {
        CodeMachine {
            state: State::Idle,
            list_outstanding: false,
        }
    }

    fn start(&mut self, next: State) -> Result<(), WormholeError> {
        if self.state != State::Idle {
            return Err(WormholeError::OnlyOneCode);
        }
        self.state = next;
        Ok(())
    }

    /// `allocate_code(length)`: sends `allocate` now if connected.
    pub(crate) fn allocate(
        &mut self,
        length: usize,
        connected: bool,
        out: &mut Vec<Command>,
    ) -> Result<(), WormholeError> {
        self.start(State::Allocating { length })?;
        if connected {
            out.push(Command::Allocate);
        }
        Ok(())
    }

    /// `set_code(code)`: validates it.
    pub(crate) fn set_code(&mut self, code: &str) -> Result<Code, WormholeError> {
        if self.state != State::Idle {
            return Err(WormholeError::OnlyOneCode);
        }
        let parsed = Code::parse(code)?;
        self.state = State::Known;
        Ok(parsed)
    }

    /// `input_code()`.
    pub(crate) fn input(&mut self) -> Result<(), WormholeError> {
        self.start(State::Inputting {
            nameplate: None,
            words_chosen: false,
        })
    }

    fn inputting(&self) -> Result<(&Option<String>, bool), WormholeError> {
        match &self.state {
            State::Inputting {
                nameplate,
                words_chosen,
            } => Ok((nameplate, *words_chosen)),
            _ => Err(WormholeError::NotInputting),
        }
    }

    /// Input helper: refresh the nameplate list.
    pub(crate) fn refresh_nameplates(
        &mut self,
        connected: bool,
        out: &mut Vec<Command>,
    ) -> Result<(), WormholeError> {
        if self.inputting()?.0.is_some() {
            return Err(WormholeError::AlreadyChoseNameplate);
        }
        self.list_outstanding = true;
        if connected {
            out.push(Command::List);
        }
        Ok(())
    }

    /// Input helper: the nameplate part is final.
    pub(crate) fn choose_nameplate(&mut self, nameplate: &str) -> Result<(), WormholeError> {
        if self.inputting()?.0.is_some() {
            return Err(WormholeError::AlreadyChoseNameplate);
        }
        validate_nameplate(nameplate)?;
        self.state = State::Inputting {
            nameplate: Some(nameplate.to_owned()),
            words_chosen: false,
        };
        Ok(())
    }

    /// Input helper: checks word completion is allowed (nameplate chosen, words not yet).
    pub(crate) fn check_words_allowed(&self) -> Result<(), WormholeError> {
        match self.inputting()? {
            (None, _) => Err(WormholeError::MustChooseNameplateFirst),
            (Some(_), true) => Err(WormholeError::AlreadyChoseWords),
            (Some(_), false) => Ok(()),
        }
    }

    /// Input helper: the words are final; returns the full code.
    pub(crate) fn choose_words(&mut self, words: &str) -> Result<Code, WormholeError> {
        self.check_words_allowed()?;
        let (Some(np), _) = self.inputting()? else {
            return Err(WormholeError::MustChooseNameplateFirst);
        };
        let code = Code::parse(&format!("{np}-{words}"))?;
        self.state = State::Inputting {
            nameplate: Some(np.clone()),
            words_chosen: true,
        };
        Ok(code)
    }

    /// A (re)connection: re-send `allocate` / `list` if still waiting for them.
    pub(crate) fn connected(&mut self, out: &mut Vec<Command>) {
        if matches!(self.state, State::Allocating { .. }) {
            out.push(Command::Allocate);
        }
        if self.list_outstanding {
            out.push(Command::List);
        }
    }

    /// `allocated` arrived: Some(word count) if we were allocating.
    pub(crate) fn rx_allocated(&mut self) -> Option<usize> {
        match self.state {
            State::Allocating { length } => {
                self.state = State::Known;
                Some(length)
            }
            _ => None,
        }
    }

    /// `nameplates` arrived.
    pub(crate) fn rx_nameplates(&mut self) {
        self.list_outstanding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_code() {
        let mut c = CodeMachine::new();
        c.allocate(2, false, &mut vec![]).unwrap();
        assert_eq!(c.input(), Err(WormholeError::OnlyOneCode));
        assert_eq!(c.allocate(2, false, &mut vec![]), Err(WormholeError::OnlyOneCode));
    }

    #[test]
    fn input_errors_in_order() {
        let mut c = CodeMachine::new();
        assert_eq!(c.choose_nameplate("4"), Err(WormholeError::NotInputting));
        c.input().unwrap();
        assert_eq!(
            c.check_words_allowed(),
            Err(WormholeError::MustChooseNameplateFirst)
        );
        let mut out = vec![];
        c.refresh_nameplates(true, &mut out).unwrap();
        assert_eq!(out, vec![Command::List]);
        c.choose_nameplate("4").unwrap();
        assert_eq!(c.choose_nameplate("5"), Err(WormholeError::AlreadyChoseNameplate));
        assert_eq!(
            c.refresh_nameplates(true, &mut out),
            Err(WormholeError::AlreadyChoseNameplate)
        );
    }
}
