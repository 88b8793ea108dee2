//! The cap on passive data listeners per client address, shared by every FTP session.
//!
//! libunftp asks for a permit before it opens a passive listener and drops it when the
//! listener closes (the client connected, the wait timed out, a newer PASV/EPSV replaced it,
//! or the session ended); each session holds at most one. This keeps one address, across all
//! its sessions, from holding more than its share of the passive port range.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use libunftp::options::{PassivePermit, PassiveQuota as Quota};

/// Passive listeners open per client address.
#[derive(Debug)]
pub struct PassiveQuota {
    per_address: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PassiveQuota {
    pub fn new(per_address: usize) -> Arc<PassiveQuota> {
        Arc::new(PassiveQuota {
            per_address: per_address.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn release(&self, ip: IpAddr) {
        // Only arithmetic under the lock; a poisoned map is still consistent.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

impl Quota for PassiveQuota {
    fn acquire(self: Arc<Self>, client: IpAddr) -> Option<PassivePermit> {
        let client = crate::limits::client_network(client);
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let n = open.entry(client).or_insert(0);
            if *n >= self.per_address {
                return None;
            }
            *n += 1;
        }
        Some(Box::new(Permit {
            quota: self,
            ip: client,
        }))
    }
}

/// One open passive listener; gives its slot back when dropped.
struct Permit {
    quota: Arc<PassiveQuota>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.quota.release(self.ip);
    }
}
