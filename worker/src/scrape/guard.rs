//! SSRF address policy: which IP addresses a fetch may connect to, and the per-hop URL check.
//!
//! Only public unicast addresses pass. Everything a bookmark URL could use to reach this
//! machine, the cluster network or cloud metadata services is refused, including IPv6 forms
//! that embed an IPv4 address (mapped, 6to4, NAT64), because those reach the IPv4 target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fuze_shared::allow_internal::InternalAllowList;
use url::{Host, Url};

use super::ScrapeError;

/// Forbidden IPv4 ranges: (network, prefix length, reason). Loopback is handled separately only
/// to name it; like every range here, only the operator's allow-list lifts it.
const V4_BLOCKED: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified/\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64.0.0/10)"),
    ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([240, 0, 0, 0], 4, "reserved/broadcast (240.0.0.0/4)"),
];

/// Forbidden IPv6 ranges without an embedded IPv4 address worth decoding.
const V6_BLOCKED: &[(u128, u8, &str)] = &[
    (
        0x0100_0000_0000_0000_0000_0000_0000_0000,
        64,
        "discard-only (100::/64)",
    ),
    (
        0x0064_ff9b_0001_0000_0000_0000_0000_0000,
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        32,
        "Teredo (2001::/32)",
    ),
    (
        0x2001_0002_0000_0000_0000_0000_0000_0000,
        48,
        "benchmarking (2001:2::/48)",
    ),
    (
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        32,
        "documentation (2001:db8::/32)",
    ),
    (
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        20,
        "documentation (3fff::/20)",
    ),
    (
        0xfc00_0000_0000_0000_0000_0000_0000_0000,
        7,
        "unique-local (fc00::/7)",
    ),
    (
        0xfe80_0000_0000_0000_0000_0000_0000_0000,
        10,
        "link-local (fe80::/10)",
    ),
    (
        0xfec0_0000_0000_0000_0000_0000_0000_0000,
        10,
        "site-local (fec0::/10)",
    ),
    (
        0xff00_0000_0000_0000_0000_0000_0000_0000,
        8,
        "multicast (ff00::/8)",
    ),
];

const NAT64_WKP: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;
const SIX_TO_FOUR: u128 = 0x2002_0000_0000_0000_0000_0000_0000_0000;

/// Why `ip` must not be contacted, or `None` when it is a public address or inside a range of
/// the operator's allow-list (which is matched as given: a listed IPv4 range does not admit
/// the IPv6 forms that embed its addresses).
pub(crate) fn forbidden_reason(ip: IpAddr, allow: &InternalAllowList) -> Option<String> {
    if allow.admits_ip(ip) {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<String> {
    if ip.is_loopback() {
        return Some("loopback (127.0.0.0/8)".to_owned());
    }
    let addr = u32::from(ip);
    V4_BLOCKED
        .iter()
        .find(|(net, len, _)| in_prefix_v4(addr, u32::from_be_bytes(*net), *len))
        .map(|(_, _, reason)| (*reason).to_owned())
}

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    if ip.is_unspecified() {
        return Some("unspecified (::)".to_owned());
    }
    if ip.is_loopback() {
        return Some("loopback (::1)".to_owned());
    }
    // Embedded IPv4 forms reach the IPv4 address, so judge that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded(v4, "IPv4-mapped");
    }
    let addr = u128::from(ip);
    if addr >> 32 == 0 {
        // ::a.b.c.d "IPv4-compatible" addresses are deprecated (RFC 4291); nothing legit uses them.
        return Some("IPv4-compatible IPv6 (::/96, deprecated)".to_owned());
    }
    if in_prefix_v6(addr, NAT64_WKP, 96) {
        return embedded(Ipv4Addr::from((addr & 0xffff_ffff) as u32), "NAT64");
    }
    if in_prefix_v6(addr, SIX_TO_FOUR, 16) {
        return embedded(Ipv4Addr::from(((addr >> 80) & 0xffff_ffff) as u32), "6to4");
    }
    V6_BLOCKED
        .iter()
        .find(|(net, len, _)| in_prefix_v6(addr, *net, *len))
        .map(|(_, _, reason)| (*reason).to_owned())
}

fn embedded(v4: Ipv4Addr, form: &str) -> Option<String> {
    v4_reason(v4).map(|reason| format!("{form} form of {v4}, {reason}"))
}

fn in_prefix_v4(addr: u32, net: u32, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

fn in_prefix_v6(addr: u128, net: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    addr & mask == net & mask
}

/// Checks one hop before any request is sent: http/https only, and IP-literal hosts are
/// vetted here because reqwest connects to them directly without asking the resolver.
/// Domain names are vetted by [`super::resolve::GuardedResolver`] at connect time.
pub(crate) fn check_url(url: &Url, allow: &InternalAllowList) -> Result<(), ScrapeError> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(ScrapeError::InvalidUrl(format!(
                "unsupported scheme \"{other}\" in {url}"
            )));
        }
    }
    let ip = match url.host() {
        None => return Err(ScrapeError::InvalidUrl(format!("no host in {url}"))),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        // The url crate turns every IPv4 spelling (decimal, octal, hex) into Host::Ipv4 for
        // http(s); parsing again costs nothing and keeps the guard independent of that.
        Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if name.is_empty() => {
                return Err(ScrapeError::InvalidUrl(format!("empty host in {url}")));
            }
            Err(_) => return Ok(()),
        },
    };
    match forbidden_reason(ip, allow) {
        Some(reason) => Err(ScrapeError::BlockedTarget(format!("{ip} is {reason}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (address, blocked by default, blocked with the loopback ranges allow-listed)
    const TABLE: &[(&str, bool, bool)] = &[
        // public
        ("1.1.1.1", false, false),
        ("8.8.8.8", false, false),
        ("93.184.215.14", false, false),
        ("172.15.255.255", false, false),
        ("172.32.0.0", false, false),
        ("100.63.255.255", false, false),
        ("100.128.0.0", false, false),
        ("192.169.0.1", false, false),
        ("223.255.255.255", false, false),
        ("2606:4700:4700::1111", false, false),
        ("2a00:1450:4001:80b::200e", false, false),
        ("::ffff:8.8.8.8", false, false),
        ("64:ff9b::808:808", false, false),
        ("2002:808:808::1", false, false),
        // loopback: what the allow-list below lifts, and nothing else
        ("127.0.0.1", true, false),
        ("127.255.255.254", true, false),
        ("::1", true, false),
        // private, link-local, CGNAT, special
        ("10.0.0.1", true, true),
        ("10.255.255.255", true, true),
        ("172.16.0.1", true, true),
        ("172.31.255.255", true, true),
        ("192.168.1.1", true, true),
        ("169.254.169.254", true, true),
        ("100.64.0.1", true, true),
        ("100.127.255.255", true, true),
        ("0.0.0.0", true, true),
        ("0.1.2.3", true, true),
        ("255.255.255.255", true, true),
        ("240.0.0.1", true, true),
        ("224.0.0.1", true, true),
        ("239.255.255.250", true, true),
        ("192.0.0.170", true, true),
        ("192.0.2.1", true, true),
        ("198.18.0.1", true, true),
        ("198.19.255.255", true, true),
        ("198.51.100.7", true, true),
        ("203.0.113.9", true, true),
        // IPv6 specials
        ("::", true, true),
        ("fe80::1", true, true),
        ("febf::1", true, true),
        ("fec0::1", true, true),
        ("fc00::1", true, true),
        ("fd12:3456::1", true, true),
        ("ff02::1", true, true),
        ("2001:db8::1", true, true),
        ("2001::1", true, true),
        ("2001:2::1", true, true),
        ("100::1", true, true),
        ("64:ff9b:1::1", true, true),
        // IPv4 embedded in IPv6: judged by the IPv4 address, loopback never lifted
        ("::ffff:127.0.0.1", true, true),
        ("::ffff:10.0.0.1", true, true),
        ("::ffff:169.254.169.254", true, true),
        ("::ffff:0.0.0.0", true, true),
        ("::127.0.0.1", true, true),
        ("::8.8.8.8", true, true),
        ("64:ff9b::7f00:1", true, true),
        ("64:ff9b::a9fe:a9fe", true, true),
        ("2002:7f00:1::", true, true),
        ("2002:c0a8:101::1", true, true),
    ];

    fn nothing_allowed() -> InternalAllowList {
        InternalAllowList::default()
    }

    fn loopback_allowed() -> InternalAllowList {
        "127.0.0.0/8,::1".parse().expect("valid allow-list")
    }

    #[test]
    fn ip_classification_table() {
        let (none, loopback) = (nothing_allowed(), loopback_allowed());
        for (text, blocked, blocked_with_loopback) in TABLE {
            let ip: IpAddr = text.parse().expect("valid test address");
            assert_eq!(
                forbidden_reason(ip, &none).is_some(),
                *blocked,
                "{text} default: {:?}",
                forbidden_reason(ip, &none)
            );
            assert_eq!(
                forbidden_reason(ip, &loopback).is_some(),
                *blocked_with_loopback,
                "{text} loopback allowed: {:?}",
                forbidden_reason(ip, &loopback)
            );
        }
    }

    #[test]
    fn a_listed_private_range_admits_only_itself() {
        let list: InternalAllowList = "10.1.0.0/16".parse().expect("valid allow-list");
        assert_eq!(
            forbidden_reason("10.1.2.3".parse().expect("ip"), &list),
            None
        );
        assert!(forbidden_reason("10.2.0.1".parse().expect("ip"), &list).is_some());
        assert!(forbidden_reason("127.0.0.1".parse().expect("ip"), &list).is_some());
        assert!(forbidden_reason("::ffff:10.1.2.3".parse().expect("ip"), &list).is_some());
    }

    #[test]
    fn reasons_name_the_range() {
        let none = nothing_allowed();
        let reason = |s: &str| forbidden_reason(s.parse().expect("ip"), &none).unwrap_or_default();
        assert!(reason("10.1.2.3").contains("10.0.0.0/8"));
        assert!(reason("169.254.169.254").contains("link-local"));
        assert!(reason("::ffff:127.0.0.1").contains("IPv4-mapped form of 127.0.0.1"));
        assert!(reason("2002:a9fe:a9fe::").contains("6to4 form of 169.254.169.254"));
    }

    #[test]
    fn url_check_scheme_and_literals() {
        let none = nothing_allowed();
        let check = |s: &str| check_url(&Url::parse(s).expect("url"), &none);
        assert!(check("https://example.com/a").is_ok());
        assert!(check("http://93.184.215.14/").is_ok());
        assert!(matches!(
            check("ftp://example.com/"),
            Err(ScrapeError::InvalidUrl(_))
        ));
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(ScrapeError::InvalidUrl(_))
        ));
        assert!(matches!(
            check("gopher://example.com/"),
            Err(ScrapeError::InvalidUrl(_))
        ));
        for blocked in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://0/",
            "http://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1:8443/",
        ] {
            assert!(
                matches!(check(blocked), Err(ScrapeError::BlockedTarget(_))),
                "{blocked}: {:?}",
                check(blocked)
            );
        }
    }
}
