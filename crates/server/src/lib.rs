//! `wormhole-server`: the magic-wormhole mailbox (rendezvous) server.
