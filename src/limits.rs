//! Admission of connections, shared by every listener (SFTP, FTP, WebDAV, API).
//!
//! One [`ConnectionGate`] per process counts open connections in total and per client
//! address, across all protocols, so that one client can never hold the descriptors the
//! others need. A listener asks [`ConnectionGate::admit`] right after `accept` and keeps the
//! returned [`ConnectionPermit`] for as long as the connection lives; dropping it gives the
//! slot back. The total defaults to a share of the process's descriptor limit, leaving
//! headroom for open files, the store and data connections. This module decides nothing
//! about identities and touches no files.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::LimitsConfig;

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections to this server")]
    Total,
    #[error("too many connections from this address")]
    PerAddress,
}

/// Connection caps and timeouts, resolved from [`LimitsConfig`] once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, all protocols and addresses together.
    pub max_connections: usize,
    /// Connections open at once from one address, all protocols together.
    pub max_connections_per_address: usize,
    /// Time allowed for a TLS handshake, SSH key exchange or an HTTP request head.
    pub handshake_timeout: Duration,
    /// Time a connection may stay open without signing in.
    pub login_timeout: Duration,
    /// Time an HTTP request in progress may wait for its client with no byte moving.
    pub transfer_idle_timeout: Duration,
    /// Files open at once (downloads and uploads in progress), all sessions together.
    pub max_open_files: usize,
    /// Of those, files one user (all their keys and sessions) or site-wide key may hold.
    pub max_open_files_per_user: usize,
}

impl Limits {
    /// Resolves the configured limits; zeros mean "derive from the descriptor limit".
    pub fn from_config(config: &LimitsConfig) -> Limits {
        let fds = descriptor_limit();
        // Headroom for the store's pool, listeners, logs and the blocking pool's work.
        const HEADROOM: u64 = 256;
        let usable = fds.saturating_sub(HEADROOM).max(64);
        // A connection may hold its socket, a data connection and an open file or two; half
        // the usable descriptors go to connections, half to open files.
        let auto_connections = (usable / 4).max(16) as usize;
        let auto_files = (usable / 2).max(32) as usize;
        let max_open_files = non_zero_or(config.max_open_files, auto_files);
        Limits {
            max_connections: non_zero_or(config.max_connections, auto_connections),
            max_connections_per_address: config.max_connections_per_address.max(1),
            handshake_timeout: Duration::from_secs(config.handshake_timeout_seconds.max(1)),
            login_timeout: Duration::from_secs(config.login_timeout_seconds.max(1)),
            transfer_idle_timeout: Duration::from_secs(config.transfer_idle_timeout_seconds.max(1)),
            max_open_files,
            max_open_files_per_user: non_zero_or(
                config.max_open_files_per_user,
                (max_open_files / 8).max(64),
            ),
        }
    }
}

fn non_zero_or(value: usize, fallback: usize) -> usize {
    if value == 0 { fallback } else { value }
}

/// The soft descriptor limit, raised to the hard limit first (as servers commonly do).
fn descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum)
        && cur < max
    {
        limit.current = Some(max);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(cur);
        }
    }
    // `None` is "unlimited": treat it as a large but finite number.
    limit.current.unwrap_or(1 << 20).min(1 << 20)
}

/// The network a client address counts under for per-address caps and lockouts: IPv4
/// addresses (and IPv4-mapped IPv6 ones) as themselves, IPv6 addresses by their /64 prefix,
/// since one IPv6 subscriber is usually handed a whole /64 and could otherwise present 2^64
/// different addresses.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts of open connections.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// The process-wide connection counter.
#[derive(Debug)]
pub struct ConnectionGate {
    limits: Limits,
    counts: Mutex<Counts>,
}

impl ConnectionGate {
    pub fn new(limits: Limits) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits a connection from `ip`, or says why not. The permit must live as long as the
    /// connection.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let ip = client_network(ip);
        // Only arithmetic happens under this lock (nothing that can panic), and a poisoned
        // lock is still usable: the counts stay consistent.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let from_ip = counts.per_address.entry(ip).or_insert(0);
        if *from_ip >= self.limits.max_connections_per_address {
            return Err(Refusal::PerAddress);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(ConnectionPermit {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now (total, from `ip`'s network).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let ip = client_network(ip);
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        (
            counts.total,
            counts.per_address.get(&ip).copied().unwrap_or(0),
        )
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_address.remove(&ip);
            }
        }
    }
}

/// One admitted connection's slot; given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
}

impl ConnectionPermit {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(total: usize, per_address: usize) -> Arc<ConnectionGate> {
        ConnectionGate::new(Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            handshake_timeout: Duration::from_secs(1),
            login_timeout: Duration::from_secs(1),
            transfer_idle_timeout: Duration::from_secs(1),
            max_open_files: 10,
            max_open_files_per_user: 10,
        })
    }

    #[test]
    fn an_address_at_its_cap_is_refused_while_another_address_is_admitted() {
        let gate = gate(10, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let _p1 = gate.admit(a).unwrap();
        let _p2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::PerAddress);
        assert!(gate.admit(b).is_ok());
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_dropping_a_permit_frees_its_slot() {
        let gate = gate(2, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = gate.admit(a).unwrap();
        let _p2 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).unwrap_err(), Refusal::Total);
        drop(p1);
        let _p3 = gate.admit(b).unwrap();
        assert_eq!(gate.open(a), (2, 0));
        assert_eq!(gate.open(b), (2, 2));
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_one_quota() {
        let gate = gate(10, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _p1 = gate.admit(a).unwrap();
        let _p2 = gate.admit(b).unwrap();
        assert_eq!(
            gate.admit("2001:db8:1:2::77".parse().unwrap()).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(gate.admit(c).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_network(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn automatic_limits_stay_below_the_descriptor_limit() {
        let limits = Limits::from_config(&LimitsConfig::default());
        let fds = descriptor_limit() as usize;
        assert!(limits.max_connections + limits.max_open_files < fds);
    }
}
