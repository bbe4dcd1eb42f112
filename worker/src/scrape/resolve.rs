//! DNS resolver for reqwest that only ever hands out vetted addresses.
//!
//! Resolving and connecting in one place closes the DNS-rebinding gap a separate
//! "resolve, check, then let the client resolve again" step would leave open: reqwest
//! connects to exactly the addresses checked here.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use fuze_shared::allow_internal::InternalAllowList;

use super::ScrapeError;
use super::guard::forbidden_reason;

/// The resolver's verdict. It travels to `fetch` inside reqwest's error chain, where it is
/// found by downcasting and turned into the matching [`ScrapeError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    Dns(String),
}

impl From<&Rejection> for ScrapeError {
    fn from(r: &Rejection) -> Self {
        match r {
            Rejection::Blocked(msg) => ScrapeError::BlockedTarget(msg.clone()),
            Rejection::Dns(msg) => ScrapeError::Dns(msg.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    allow: Arc<InternalAllowList>,
}

impl GuardedResolver {
    pub(crate) fn new(allow: InternalAllowList) -> Arc<Self> {
        Arc::new(Self {
            allow: Arc::new(allow),
        })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow = self.allow.clone();
        Box::pin(async move {
            let addrs = resolve_vetted(&host, &allow).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves `host` and refuses it if ANY address is forbidden: picking only the "good" ones
/// would still let an attacker-controlled name aim at internal hosts half the time. A host name
/// on the operator's allow-list may resolve to anything.
pub(crate) async fn resolve_vetted(
    host: &str,
    allow: &InternalAllowList,
) -> Result<Vec<SocketAddr>, Rejection> {
    // Port 0: reqwest substitutes the URL's port (or the scheme default).
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| Rejection::Dns(format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Rejection::Dns(format!("{host}: no addresses")));
    }
    if allow.admits_host(host) {
        return Ok(addrs);
    }
    for addr in &addrs {
        if let Some(reason) = forbidden_reason(addr.ip(), allow) {
            return Err(Rejection::Blocked(format!(
                "{host} resolves to {}, {reason}",
                addr.ip()
            )));
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_is_refused_unless_allow_listed() {
        let none = InternalAllowList::default();
        let err = resolve_vetted("localhost", &none).await.err();
        assert!(
            matches!(err, Some(Rejection::Blocked(ref m)) if m.contains("loopback")),
            "{err:?}"
        );
        for list in ["localhost", "127.0.0.0/8,::1"] {
            let allow: InternalAllowList = list.parse().expect("valid allow-list");
            let ok = resolve_vetted("localhost", &allow)
                .await
                .unwrap_or_default();
            assert!(
                ok.iter().all(|a| a.ip().is_loopback()) && !ok.is_empty(),
                "{list}"
            );
        }
        // Another name is still judged by its addresses.
        let other: InternalAllowList = "wiki.internal".parse().expect("valid allow-list");
        assert!(resolve_vetted("localhost", &other).await.is_err());
    }

    #[tokio::test]
    async fn unresolvable_name_is_dns_error() {
        // .invalid is reserved (RFC 6761) and never resolves.
        let err = resolve_vetted("no-such-host.invalid", &InternalAllowList::default())
            .await
            .err();
        assert!(matches!(err, Some(Rejection::Dns(_))), "{err:?}");
    }
}
