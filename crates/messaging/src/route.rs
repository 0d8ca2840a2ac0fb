//! Routes: ordered fallback chains of channels (SPEC M11). A message names its
//! route (or takes the default); it starts on the route's first hop and moves to
//! the next when a hop's budget is spent, e.g. `[primary-chat, secondary-chat,
//! email]` or `[smpp, http-aggregator]`. Which hop a message is on is stored with
//! it, so a restart carries on where it was.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channel::Channel;
use crate::policy::HopPolicy;

/// The name of the SMPP channel (the pool of binds); always defined when the
/// gateway has SMPP settings.
pub const SMPP_CHANNEL: &str = "smpp";

/// One hop: a channel and how long to keep trying on it.
pub struct Hop {
    /// The channel's name, for the history and metrics.
    pub channel_name: String,
    /// The channel.
    pub channel: Channel,
    /// Budget, backoff and ambiguous policy.
    pub policy: HopPolicy,
}

/// A named chain of hops.
pub struct Route {
    /// Its name.
    pub name: String,
    /// The hops, first to last; never empty.
    pub hops: Vec<Hop>,
}

impl Route {
    /// The hop a stored message is on. A hop index past the end (the route was
    /// shortened since the message was stored) means the last hop: the message
    /// is still sent, never stranded.
    pub fn hop(&self, index: u32) -> (u32, &Hop) {
        let last = self.hops.len() - 1;
        let index = (index as usize).min(last);
        (index as u32, &self.hops[index])
    }

    /// The channel name of the hop after `index`, if any.
    pub fn next_channel(&self, index: u32) -> Option<&str> {
        self.hops
            .get(index as usize + 1)
            .map(|hop| hop.channel_name.as_str())
    }
}

/// Every route of the gateway, by name.
pub struct Routes {
    routes: HashMap<String, Arc<Route>>,
    default: String,
}

impl Routes {
    /// `default` must be one of `routes`.
    pub fn new(routes: Vec<Route>, default: &str) -> Routes {
        let routes: HashMap<String, Arc<Route>> = routes
            .into_iter()
            .map(|route| (route.name.clone(), Arc::new(route)))
            .collect();
        assert!(
            routes.contains_key(default),
            "default route {default:?} is not defined"
        );
        Routes {
            routes,
            default: default.to_owned(),
        }
    }

    /// The route called `name`; the empty name is the default route.
    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        if name.is_empty() {
            self.routes.get(&self.default)
        } else {
            self.routes.get(name)
        }
    }

    /// Whether `name` names a route (the API checks what clients ask for).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The default route's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Route names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
