//! `crate::common` of the PostgreSQL conformance binaries: the same `InProcess`/`args`/`Client`
//! names as `tests/common`, but `InProcess::start` gives each case a fresh database in this
//! binary's throwaway PostgreSQL 15 and starts `crate::NODES` in-process nodes on it;
//! `url()` hands out the nodes in turn. Without PostgreSQL it says SKIPPED loudly and runs
//! the case on SQLite in memory, so the binary still passes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::postgres_kit::{Cluster, installed};
pub use crate::ws_common::{Client, args};
use wormhole_server::MailboxArgs;

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// In-process nodes on one fresh database; aborted on drop.
pub struct InProcess {
    /// The first node's address (for plain HTTP requests).
    pub addr: SocketAddr,
    nodes: Vec<crate::ws_common::InProcess>,
    next: AtomicUsize,
}

impl InProcess {
    pub async fn start(mut args: MailboxArgs) -> Self {
        let mut count = crate::NODES;
        if installed("conformance on PostgreSQL") {
            let cluster = tokio::task::spawn_blocking(cluster).await.unwrap();
            let url = cluster.new_database("conformance").await;
            args.database = Some(url.as_str().into());
        } else {
            count = 1;
        }
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(crate::ws_common::InProcess::start(args.clone()).await);
        }
        InProcess {
            addr: nodes[0].addr,
            nodes,
            next: AtomicUsize::new(0),
        }
    }

    /// The next node's URL (round robin).
    pub fn url(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.nodes[i % self.nodes.len()].url()
    }
}
