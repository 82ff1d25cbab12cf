//! Where webhooks may point: the server-side request forgery guard.
//!
//! A webhook URL is chosen by a caller, and the notification service POSTs application data
//! to it from inside the network. So, unless the operator allow-listed it:
//! - the scheme must be `https` (`http` only when [`WebhookPolicy::allow_http`] is set, e.g. in
//!   `tongban dev`);
//! - every address the host resolves to must be public: loopback, private (RFC 1918), unique
//!   local, link-local, CGNAT, unspecified, multicast, broadcast, reserved and the cloud
//!   metadata addresses are refused ([`forbidden`]). One bad address refuses the host, since
//!   the client may connect to any of them.
//!
//! The check runs at registration and again at every delivery. At delivery the HTTP client
//! resolves names only through [`GuardedResolver`], which checks the addresses it returns, so
//! the connection goes to an address that was checked: a DNS answer that changes between the
//! check and the connection (rebinding) cannot slip an internal address in.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;

/// What the operator allows beyond public https endpoints.
#[derive(Debug, Clone, Default)]
pub struct WebhookPolicy {
    /// Accept `http://` URLs (plain text). Off in production; on in `tongban dev`.
    pub allow_http: bool,
    /// Networks that may be called although they are not public (e.g. `127.0.0.1/32` for a
    /// local receiver, `10.1.2.0/24` for an internal integration bus).
    pub allow_nets: Vec<IpNet>,
    /// Host names that may be called whatever they resolve to (compared case-insensitively).
    pub allow_hosts: Vec<String>,
}

impl WebhookPolicy {
    /// Adds a comma-separated list of CIDRs, single addresses and host names.
    pub fn allow(&mut self, list: &str) -> Result<(), String> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                self.allow_nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                self.allow_nets.push(IpNet::from(ip));
            } else if item.contains('/') {
                return Err(format!("webhook allow-list: {item:?} is not a CIDR"));
            } else {
                self.allow_hosts.push(item.to_ascii_lowercase());
            }
        }
        Ok(())
    }

    /// Builder form of [`Self::allow`], for tests and embedding.
    pub fn allowing(mut self, list: &str) -> Result<Self, String> {
        self.allow(list)?;
        Ok(self)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts.contains(&host)
    }

    /// `Err(reason)` when `ip` may not be called.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match forbidden(ip) {
            Some(kind) => Err(format!("{ip} is a {kind} address")),
            None => Ok(()),
        }
    }

    /// The URL's scheme and literal host: everything that can be checked without DNS.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must be https:// (plain http is not allowed here)".into()),
            _ => return Err("must be https://".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        match literal_host(url)? {
            Host::Ip(ip) => self.check_ip(ip),
            Host::Name(_) => Ok(()),
        }
    }

    /// [`Self::check_url`], then resolves a host name and checks every address.
    pub async fn check_url_resolved(&self, url: &reqwest::Url) -> Result<(), String> {
        self.check_url(url)?;
        if let Host::Name(host) = literal_host(url)? {
            let port = url.port_or_known_default().unwrap_or(443);
            self.resolve(host, port).await?;
        }
        Ok(())
    }

    /// Every address `host` resolves to, when all of them may be called.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("host {host} does not resolve: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("host {host} has no addresses"));
        }
        if !self.host_allowed(host) {
            for a in &addrs {
                self.check_ip(a.ip())
                    .map_err(|e| format!("host {host} resolves to {e}"))?;
            }
        }
        Ok(addrs)
    }
}

enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// The URL's host: an address literal (IPv6 without its brackets) or a name.
fn literal_host(url: &reqwest::Url) -> Result<Host<'_>, String> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host),
    })
}

/// Why `ip` is not a public unicast address, or `None` when it is.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        () if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        () if ip.is_unspecified() || a == 0 => "unspecified",
        () if ip.is_loopback() => "loopback",
        () if ip.is_private() => "private",
        () if ip.is_link_local() => "link-local",
        () if a == 100 && (64..128).contains(&b) => "shared (CGNAT)",
        () if ip.is_multicast() => "multicast",
        () if ip.is_broadcast() || a >= 240 => "reserved",
        // 192.0.0.0/24: IETF protocol assignments (e.g. DS-Lite, NAT64 discovery).
        () if a == 192 && b == 0 && ip.octets()[2] == 0 => "reserved",
        () if a == 198 && (b == 18 || b == 19) => "benchmarking",
        () => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // Addresses that embed an IPv4 address reach that address: judge it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let seg = ip.segments();
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let o = ip.octets();
        return forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    Some(match () {
        () if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => "cloud metadata",
        () if ip.is_unspecified() => "unspecified",
        () if ip.is_loopback() => "loopback",
        () if ip.is_multicast() => "multicast",
        // fc00::/7 unique local.
        () if seg[0] & 0xfe00 == 0xfc00 => "unique-local",
        // fe80::/10 link-local; fec0::/10 the old site-local.
        () if seg[0] & 0xffc0 == 0xfe80 => "link-local",
        () if seg[0] & 0xffc0 == 0xfec0 => "site-local",
        // ::/96 IPv4-compatible (deprecated) and other addresses starting with 96 zero bits.
        () if seg[..6] == [0, 0, 0, 0, 0, 0] => "reserved",
        () => return None,
    })
}

/// The HTTP client's only resolver: answers with the addresses [`WebhookPolicy::resolve`]
/// checked, and fails the request when any of them is forbidden.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: Arc<WebhookPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let addrs = policy
                .resolve(&host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(forbidden(ip(bad)).is_some(), "{bad}");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(forbidden(ip(good)), None, "{good}");
        }
    }

    #[test]
    fn allow_lists_open_exactly_what_they_name() {
        let p = WebhookPolicy::default()
            .allowing("127.0.0.1, 10.1.0.0/16, hooks.internal")
            .unwrap();
        assert!(p.check_ip(ip("127.0.0.1")).is_ok());
        assert!(p.check_ip(ip("127.0.0.2")).is_err());
        assert!(p.check_ip(ip("10.1.200.3")).is_ok());
        assert!(p.check_ip(ip("10.2.0.1")).is_err());
        assert!(p.host_allowed("Hooks.Internal."));
        assert!(WebhookPolicy::default().allowing("10.0.0.0/99").is_err());
    }

    #[test]
    fn schemes_and_literal_hosts() {
        let strict = WebhookPolicy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(strict.check_url(&url("https://example.com/h")).is_ok());
        assert!(strict.check_url(&url("http://example.com/h")).is_err());
        assert!(strict.check_url(&url("https://127.0.0.1/h")).is_err());
        assert!(strict.check_url(&url("https://[::1]/h")).is_err());
        assert!(strict.check_url(&url("https://u:p@example.com/h")).is_err());
        let dev = crate::config::NotificationConfig::default()
            .webhook_policy(true)
            .unwrap();
        assert!(dev.check_url(&url("http://127.0.0.1:8080/h")).is_ok());
        assert!(dev.check_url(&url("http://10.0.0.1/h")).is_err());
    }
}
