//! Terminator: after `close`, waits until both the nameplate and the mailbox are done, then
//! says the connection may be dropped and the wormhole is closed (docs/protocol.md §2.6 "T").

/// The terminator.
#[derive(Debug, Default)]
pub(crate) struct Terminator {
    pub(super) closing: bool,
    pub(super) nameplate_done: bool,
    pub(super) mailbox_done: bool,
}

impl Terminator {
    /// Close started; returns true if everything is already done.
    pub(crate) fn close(&mut self, nameplate_done: bool, mailbox_done: bool) -> bool {
        self.closing = true;
        self.nameplate_done |= nameplate_done;
        self.mailbox_done |= mailbox_done;
        self.finished()
    }

    /// The nameplate is released; returns true if closing is finished.
    pub(crate) fn nameplate_done(&mut self) -> bool {
        self.nameplate_done = true;
        self.finished()
    }

    /// The mailbox is closed; returns true if closing is finished.
    pub(crate) fn mailbox_done(&mut self) -> bool {
        self.mailbox_done = true;
        self.finished()
    }

    fn finished(&self) -> bool {
        self.closing && self.nameplate_done && self.mailbox_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_both() {
        let mut t = Terminator::default();
        assert!(!t.nameplate_done()); // not closing yet
        assert!(!t.close(false, false));
        assert!(t.mailbox_done());
    }
}
