//! The SSRF guard: a webhook may only reach public addresses over http(s), unless the
//! admin's allow-list (`webhooks.allow_private`, CIDRs) opens a range.
//!
//! The check is made after DNS, at send time, on every address the name resolves to, and the
//! connection then goes to an address that passed ([`Target::resolve`]): a name cannot be
//! re-resolved to another address between the check and the connect (no DNS rebinding).
//! Refused: loopback, private (RFC 1918, unique-local), link-local (cloud metadata at
//! 169.254.169.254 and fd00:ec2::254 included), carrier-grade NAT, unspecified, multicast,
//! broadcast, benchmarking, documentation and reserved ranges, and IPv6 forms that embed an
//! IPv4 address (mapped, compatible, NAT64) are judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Ranges the admin opened (`webhooks.allow_private`).
#[derive(Debug, Clone, Default)]
pub struct Allow(pub Vec<IpNet>);

impl Allow {
    /// Every address (for reading stored rules, whose addresses are checked at send time).
    pub fn all() -> Allow {
        Allow(vec![
            "0.0.0.0/0".parse().expect("CIDR"),
            "::/0".parse().expect("CIDR"),
        ])
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !forbidden(ip) || self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Why a webhook URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("not an absolute http(s) URL")]
    BadUrl,
    #[error("credentials in the URL are not allowed")]
    Credentials,
    #[error("{0} is a private, loopback, link-local or reserved address")]
    Forbidden(IpAddr),
    #[error("cannot resolve {0}")]
    Resolve(String),
}

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl Target {
    /// Parses an absolute `http://` or `https://` URL (no user info).
    pub fn parse(url: &str) -> Result<Target, GuardError> {
        if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(GuardError::BadUrl);
        }
        let uri: axum::http::Uri = url.parse().map_err(|_| GuardError::BadUrl)?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(GuardError::BadUrl),
        };
        let authority = uri.authority().ok_or(GuardError::BadUrl)?;
        if authority.as_str().contains('@') {
            return Err(GuardError::Credentials);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(GuardError::BadUrl);
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        Ok(Target {
            https,
            host,
            port,
            path_and_query,
        })
    }

    /// Refuses a literal address the guard forbids (names are left to [`Target::resolve`]).
    pub fn check_literal(&self, allow: &Allow) -> Result<(), GuardError> {
        match self.host.parse::<IpAddr>() {
            Ok(ip) if !allow.permits(ip) => Err(GuardError::Forbidden(ip)),
            _ => Ok(()),
        }
    }

    /// Resolves the host and returns the addresses the guard permits, in resolver order;
    /// an error when there are none (naming the first refused address).
    pub async fn resolve(&self, allow: &Allow) -> Result<Vec<SocketAddr>, GuardError> {
        let found: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|_| GuardError::Resolve(self.host.chars().take(255).collect()))?
                .collect(),
        };
        let refused = found.iter().find(|a| !allow.permits(a.ip())).copied();
        let ok: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| allow.permits(a.ip()))
            .collect();
        match (ok.is_empty(), refused) {
            (false, _) => Ok(ok),
            (true, Some(a)) => Err(GuardError::Forbidden(a.ip())),
            (true, None) => Err(GuardError::Resolve(self.host.chars().take(255).collect())),
        }
    }
}

/// Addresses a webhook may not reach unless allowed.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return forbidden_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    // SIIT's IPv4-translated form (::ffff:0:a.b.c.d) embeds one too; local-use NAT64
    // (64:ff9b:1::/48, RFC 8215) translates to whatever the operator chose: refused whole.
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return forbidden_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        return true;
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 included)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo etc.)
        || s[0] == 0x2002 // 6to4 embeds an IPv4 address
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0] // discard-only
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        forbidden(text.parse().unwrap())
    }

    #[test]
    fn translated_and_local_use_nat64_forms_are_refused() {
        assert!(refused("::ffff:0:127.0.0.1"));
        assert!(refused("::ffff:0:169.254.169.254"));
        assert!(refused("64:ff9b:1::a00:1"));
        assert!(!refused("::ffff:0:8.8.8.8"));
    }

    #[test]
    fn loopback_private_link_local_metadata_and_embedded_forms_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!refused(ip), "{ip} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_ranges() {
        let allow = Allow(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(allow.permits("127.0.0.1".parse().unwrap()));
        assert!(!allow.permits("10.0.0.1".parse().unwrap()));
        assert!(!allow.permits("169.254.169.254".parse().unwrap()));
        assert!(allow.permits("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn only_http_and_https_urls_without_credentials_parse() {
        let t = Target::parse("http://example.com:8080/hook?x=1").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path_and_query.as_str()),
            (false, "example.com", 8080, "/hook?x=1")
        );
        let t = Target::parse("https://[2606:4700::1]").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_and_query.as_str()),
            ("2606:4700::1", 443, "/")
        );
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://x/",
            "/relative",
            "http://user:pw@example.com/",
            "http://exa mple.com/",
            "http://example.com/\r\nX: y",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[tokio::test]
    async fn names_are_judged_by_the_addresses_they_resolve_to() {
        let t = Target::parse("http://localhost:9/").unwrap();
        assert!(matches!(
            t.resolve(&Allow::default()).await,
            Err(GuardError::Forbidden(_)) | Err(GuardError::Resolve(_))
        ));
        let allow = Allow(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let addrs = t.resolve(&allow).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        let literal = Target::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        assert!(literal.check_literal(&allow).is_err());
    }
}
