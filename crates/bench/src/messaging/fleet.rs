//! The gateways of one hotsite run and the store they share: one `hotsite
//! run` child with its own SQLite file, or one or more children on a fresh
//! PostgreSQL schema (SPEC M17: gateways share a queue only through
//! PostgreSQL). Started together, measured together, stopped by PID; the
//! schema is dropped after.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hotsite_core::Target;

use super::pg::PgSchema;
use super::procs::{self, Gateway, GatewayCounters, GatewaySettings, StoreSetup};
use super::receiver::Receiver;

/// Which store a run's gateways use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    }
}

/// What the gateways of a run are given.
pub(crate) struct FleetSetup<'a> {
    /// The `hotsite` binary.
    pub(crate) program: &'a Path,
    /// A fresh directory of the run: one subdirectory per gateway.
    pub(crate) dir: &'a Path,
    pub(crate) store: Store,
    /// PostgreSQL URL and the schema to create for the run (PostgreSQL only).
    pub(crate) postgres: Option<(&'a str, String)>,
    pub(crate) gateways: usize,
    /// Every gateway binds to every one of these.
    pub(crate) smsc: &'a [(Target, SocketAddr)],
    pub(crate) window: usize,
    pub(crate) receipts: bool,
    /// The bench's application, when receipts are posted to it: gateway `n`
    /// posts to its own path, so receipts are counted per gateway.
    pub(crate) app: Option<&'a Receiver>,
}

/// The running gateways of a run.
pub(crate) struct Fleet {
    pub(crate) gateways: Vec<Gateway>,
    /// Declared after the gateways: on an early drop they are killed before
    /// their schema goes.
    schema: Option<PgSchema>,
}

impl Fleet {
    /// Creates the store (PostgreSQL: an empty schema), then starts the
    /// gateways one after the other (the first creates the tables alone).
    /// On an error, what was started is killed and the schema dropped.
    pub(crate) async fn start(setup: FleetSetup<'_>) -> anyhow::Result<Fleet> {
        anyhow::ensure!(setup.gateways >= 1, "no gateway to start");
        anyhow::ensure!(
            setup.store == Store::Postgres || setup.gateways == 1,
            "{} gateways on one SQLite store: a SQLite file belongs to one gateway (SPEC M17); use --store postgres",
            setup.gateways
        );
        let (schema, store) = match (setup.store, setup.postgres) {
            (Store::Sqlite, _) => (None, StoreSetup::Sqlite),
            (Store::Postgres, Some((url, name))) => {
                let schema = PgSchema::create(url, name)?;
                let store = StoreSetup::Postgres {
                    url: schema.gateway_url(),
                    schema: schema.name().to_owned(),
                };
                (Some(schema), store)
            }
            (Store::Postgres, None) => anyhow::bail!("PostgreSQL run without a URL"),
        };
        let mut fleet = Fleet {
            gateways: Vec::with_capacity(setup.gateways),
            schema,
        };
        for n in 1..=setup.gateways {
            let dir = setup.dir.join(format!("gateway{n}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let gateway = Gateway::start(
                setup.program,
                &dir,
                setup.smsc,
                &GatewaySettings {
                    store: store.clone(),
                    window: setup.window,
                    receipts: setup.receipts,
                    webhook: setup.app.map(|app| app.hotsite_url(n)),
                },
            )
            .await
            .with_context(|| format!("gateway {n} of {}", setup.gateways))?;
            fleet.gateways.push(gateway);
        }
        Ok(fleet)
    }

    /// Waits until every gateway has `want` binds up.
    pub(crate) async fn wait_binds(&mut self, want: usize, limit: Duration) -> anyhow::Result<()> {
        let count = self.gateways.len();
        for (i, gateway) in self.gateways.iter_mut().enumerate() {
            gateway
                .wait_binds(want, limit)
                .await
                .with_context(|| format!("gateway {} of {count}", i + 1))?;
        }
        Ok(())
    }

    /// Each gateway's API, in gateway order.
    pub(crate) fn apis(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.api.clone()).collect()
    }

    /// PostgreSQL's processes working for this run (see
    /// [`PgSchema::server_pids`]); `None` on SQLite.
    pub(crate) fn database_pids(&self) -> Option<Vec<u32>> {
        self.schema.as_ref().map(PgSchema::server_pids)
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.gateways.iter().map(|g| g.proc.pid()).collect()
    }

    /// The gateways' RSS field (`VmRSS`, `VmHWM`), summed, in kB.
    pub(crate) fn memory_kb(&self, field: &str) -> Option<u64> {
        self.gateways
            .iter()
            .map(|g| procs::proc_kb(g.proc.pid(), field))
            .sum()
    }

    /// Bytes the store takes on disk now: the SQLite files, or the schema's
    /// tables with their indexes (`pg_total_relation_size`).
    pub(crate) fn store_bytes(&self) -> Option<u64> {
        match &self.schema {
            None => Some(self.gateways.iter().map(Gateway::sqlite_bytes).sum()),
            Some(schema) => match schema.bytes() {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    eprintln!("warning: {error:#}");
                    None
                }
            },
        }
    }

    /// Each gateway's counters (missing ones as zeros, with a warning).
    pub(crate) async fn counters(&self) -> Vec<GatewayCounters> {
        let mut all = Vec::with_capacity(self.gateways.len());
        for (i, gateway) in self.gateways.iter().enumerate() {
            all.push(gateway.counters().await.unwrap_or_else(|| {
                eprintln!("warning: gateway {}'s /metrics could not be read", i + 1);
                GatewayCounters::default()
            }));
        }
        all
    }

    /// Stops every gateway by PID, then drops the schema.
    pub(crate) async fn stop(mut self) {
        for gateway in std::mem::take(&mut self.gateways) {
            gateway.stop().await;
        }
        if let Some(schema) = self.schema.take() {
            schema.drop_now();
        }
    }
}
