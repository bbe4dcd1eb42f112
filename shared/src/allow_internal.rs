//! The operator's allow-list of internal scrape targets (`FUZE_SCRAPE_ALLOW_INTERNAL`): the only
//! way past the SSRF guard's refusal of loopback, private and other internal addresses.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

/// Address ranges and host names the scraper may reach although they are internal. Empty by
/// default. A listed range admits its addresses whatever name led there; a listed host name
/// admits whatever its DNS answers (so an intranet name works without knowing its addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternalAllowList {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl InternalAllowList {
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    /// Whether `ip` is inside a listed range.
    pub fn admits_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether `host` (a DNS name, any case, with or without the trailing dot) is listed.
    pub fn admits_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.contains(&host)
    }
}

fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl FromStr for InternalAllowList {
    type Err = String;

    /// Comma-separated CIDRs (`127.0.0.0/8`, `fd00::/8`), single addresses and host names.
    fn from_str(raw: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if entry.contains('/') || url::Host::parse(entry).is_err() {
                return Err(format!(
                    "{entry:?} is neither a CIDR, an address nor a host name"
                ));
            } else {
                list.hosts.push(normalize_host(entry));
            }
        }
        Ok(list)
    }
}

impl fmt::Display for InternalAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .nets
            .iter()
            .map(ToString::to_string)
            .chain(self.hosts.iter().cloned())
            .collect();
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_addresses_and_names_parse_and_match() {
        let list: InternalAllowList = "127.0.0.0/8, 10.1.2.3 ,Wiki.Internal.,fd00::/8"
            .parse()
            .expect("valid list");
        assert!(list.admits_ip("127.9.9.9".parse().expect("ip")));
        assert!(list.admits_ip("10.1.2.3".parse().expect("ip")));
        assert!(!list.admits_ip("10.1.2.4".parse().expect("ip")));
        assert!(list.admits_ip("fd12::1".parse().expect("ip")));
        assert!(!list.admits_ip("::1".parse().expect("ip")));
        assert!(list.admits_host("wiki.internal"));
        assert!(list.admits_host("WIKI.internal."));
        assert!(!list.admits_host("other.internal"));
        assert_eq!(
            list.to_string(),
            "127.0.0.0/8,10.1.2.3/32,fd00::/8,wiki.internal"
        );
    }

    #[test]
    fn empty_by_default_and_bad_entries_are_refused() {
        assert!("".parse::<InternalAllowList>().expect("empty").is_empty());
        assert!(
            " , "
                .parse::<InternalAllowList>()
                .expect("empty")
                .is_empty()
        );
        assert!("10.0.0.0/33".parse::<InternalAllowList>().is_err());
        assert!("bad host!".parse::<InternalAllowList>().is_err());
    }
}
