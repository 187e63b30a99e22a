//! The mailbox (rendezvous) server: listener, connection tasks, engine thread, sans-IO core.
//!
//! Data flow: [`connection`] tasks parse frames and send [`engine::EngineInput`]s to the one
//! [`engine`] thread, which runs the [`core`] over the [`state`], commits the writes to the
//! storage in one transaction per batch, then queues the replies back to the connection tasks.
//! [`server`] binds the listener, starts the engine and the prune timer, and accepts.
//!
//! Must not: know which storage backend runs. Everything here speaks to `dyn Storage` in the
//! terms of `crate::storage` (nameplates by app and name, mailboxes by id); database keys,
//! SQL and backend errors stay inside the backend.

pub mod allocate;
pub mod connection;
pub mod core;
pub mod engine;
pub mod fields;
pub mod http;
pub mod limits;
pub mod outbox;
pub mod server;
pub mod state;
pub mod stream;
pub mod tls;
pub mod usage;
