//! One system behind a host of its own, for tests, demos and tools that
//! run a system the way `hotsite run` serves it, and read it while it runs.

use std::future::Future;
use std::net::SocketAddr;

use crate::{Deps, Host, HostConfig, HttpRoutes, RunningHost, System};

/// Why [`Single::start`] failed: the host, or the system's own start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A served system and a view of it (`V`: what stays readable after its
/// handle went to the host). Derefs to the view.
pub struct Single<V> {
    host: RunningHost,
    view: V,
}

impl<V> Single<V> {
    /// Binds `config.listen`, starts the system with the host's deps, takes
    /// its view, and serves it.
    pub async fn start<S, E, F, Fut>(
        config: HostConfig,
        start: F,
        view: impl FnOnce(&S) -> V,
    ) -> Result<Single<V>, StartError>
    where
        S: System,
        E: std::error::Error + Send + Sync + 'static,
        F: FnOnce(Deps) -> Fut,
        Fut: Future<Output = Result<(S, HttpRoutes), E>>,
    {
        let mut host = Host::bind(config).await?;
        let (system, routes) = start(host.deps()).await?;
        let view = view(&system);
        host.add(Box::new(system), routes);
        Ok(Single {
            host: host.serve()?,
            view,
        })
    }

    /// Where the API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// The host (its event stream).
    pub fn host(&self) -> &RunningHost {
        &self.host
    }

    /// Stops the listener, then the system.
    pub async fn shutdown(self) {
        self.host.shutdown().await;
    }
}

impl<V> std::ops::Deref for Single<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.view
    }
}
