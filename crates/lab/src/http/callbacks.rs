//! Posting delivery receipts and MOs to hotsite's callback URLs, signed when
//! a secret is configured, each in its own task, retried until answered 2xx
//! or out of attempts. The bodies are built by their senders
//! (`aggregator`, `LabHandle::send_http_mo`); this module only delivers them.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::Url;

use crate::config::LabConfig;
use crate::http::signing::{sign, SIGNATURE_HEADER};
use crate::http::ServerRef;
use crate::lab::LabError;
use crate::port::lock;
use crate::shared::Shared;

/// The HTTP client and the settings every callback uses.
pub(crate) struct Callbacks {
    client: reqwest::Client,
    dr_url: Option<Url>,
    mo_url: Option<Url>,
    secret: Option<Vec<u8>>,
    retry: Duration,
    max_attempts: u32,
}

/// What a callback carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackKind {
    Receipt,
    Mo,
}

/// One callback: its kind, the site it is posted for, and its form body.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    kind: CallbackKind,
    site: ServerRef,
    body: String,
}

impl Callback {
    /// A delivery receipt posted by `site`.
    pub(crate) fn receipt(site: ServerRef, body: String) -> Callback {
        Callback {
            kind: CallbackKind::Receipt,
            site,
            body,
        }
    }

    /// An MO posted by `site`.
    pub(crate) fn mo(site: ServerRef, body: String) -> Callback {
        Callback {
            kind: CallbackKind::Mo,
            site,
            body,
        }
    }
}

impl Callbacks {
    /// The client for `config`'s `[lab.http]` (URLs were validated already).
    pub(crate) fn new(config: &LabConfig) -> Result<Callbacks, LabError> {
        let http = config.http.as_ref();
        let url = |url: Option<&String>| url.and_then(|url| Url::parse(url).ok());
        let timeout = Duration::from_millis(http.map_or(2_000, |http| http.callback_timeout_ms));
        // The callback URLs are on this machine: a proxy from the environment
        // would only get in the way.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(LabError::HttpClient)?;
        Ok(Callbacks {
            client,
            dr_url: url(http.and_then(|http| http.dr_url.as_ref())),
            mo_url: url(http.and_then(|http| http.mo_url.as_ref())),
            secret: http
                .and_then(|http| http.callback_secret.as_ref())
                .map(|secret| secret.as_bytes().to_vec()),
            retry: Duration::from_millis(http.map_or(200, |http| http.callback_retry_ms)),
            max_attempts: http.map_or(1, |http| http.callback_max_attempts),
        })
    }

    /// Whether delivery receipts have somewhere to go.
    pub(crate) fn has_dr_url(&self) -> bool {
        self.dr_url.is_some()
    }

    /// Whether MOs have somewhere to go.
    pub(crate) fn has_mo_url(&self) -> bool {
        self.mo_url.is_some()
    }

    fn url(&self, kind: CallbackKind) -> Option<&Url> {
        match kind {
            CallbackKind::Receipt => self.dr_url.as_ref(),
            CallbackKind::Mo => self.mo_url.as_ref(),
        }
    }
}

/// Posts `callback` after `delay`, in a task of its own.
pub(crate) fn post_after(shared: &Arc<Shared>, callback: Callback, delay: Duration) {
    let task_shared = Arc::clone(shared);
    let _runtime = shared.runtime.enter();
    shared.tasks.spawn(async move {
        tokio::select! {
            () = task_shared.shutdown.cancelled() => {}
            () = deliver(&task_shared, callback, delay) => {}
        }
    });
}

/// Waits `delay`, then posts until a 2xx answer or the last attempt.
async fn deliver(shared: &Shared, callback: Callback, delay: Duration) {
    let callbacks = &shared.callbacks;
    let Some(url) = callbacks.url(callback.kind) else {
        return;
    };
    count(shared, callback.site, |stats| match callback.kind {
        CallbackKind::Receipt => stats.receipts += 1,
        CallbackKind::Mo => stats.mos += 1,
    });
    tokio::time::sleep(delay).await;
    let signature = callbacks
        .secret
        .as_ref()
        .and_then(|secret| HeaderValue::from_str(&sign(secret, callback.body.as_bytes())).ok());
    for attempt in 1..=callbacks.max_attempts {
        count(shared, callback.site, |stats| {
            stats.attempts += 1;
            if attempt > 1 {
                stats.retries += 1;
            }
        });
        let mut request = callbacks
            .client
            .post(url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(callback.body.clone());
        if let Some(signature) = &signature {
            request = request.header(SIGNATURE_HEADER, signature.clone());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                count(shared, callback.site, |stats| stats.delivered += 1);
                tracing::debug!(kind = ?callback.kind, attempt, "callback delivered");
                return;
            }
            Ok(response) => {
                tracing::debug!(kind = ?callback.kind, attempt, status = %response.status(), "callback refused");
            }
            Err(error) => {
                tracing::debug!(kind = ?callback.kind, attempt, %error, "callback failed");
            }
        }
        if attempt < callbacks.max_attempts {
            tokio::time::sleep(callbacks.retry).await;
        }
    }
    count(shared, callback.site, |stats| stats.abandoned += 1);
    tracing::warn!(kind = ?callback.kind, url = %url, "callback abandoned");
}

fn count(shared: &Shared, site: ServerRef, update: impl FnOnce(&mut crate::stats::CallbackStats)) {
    if let ServerRef::Site(index) = site {
        update(&mut lock(&shared.http_sites[index].counters).callbacks);
    }
}
