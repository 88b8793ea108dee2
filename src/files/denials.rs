//! Per-session rate limit on recorded policy refusals.
//!
//! Every refusal is decided in [`super::Files`], and each one used to become an audit record
//! and an info log line. A client that pipelines refused requests (SFTP `STAT` of hidden
//! paths) could then fill the disk through the audit database and the log. [`Denials`] lets
//! at most [`RECORDED_PER_WINDOW`] refusals of one session per [`WINDOW`] through; the rest
//! are counted (per session, and process-wide in `filegate_file_denials_unrecorded_total`),
//! and one summary record per session and window says how many were not recorded
//! individually. The summary is written with the session's next refusal after its window,
//! or when ended windows are swept (at most once a window, on any session's refusal), or
//! when the window is evicted: the table of sessions is bounded ([`MAX_SESSIONS`]), the
//! oldest windows go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::audit::AuditEvent;

/// Refusals of one session recorded individually per window.
pub const RECORDED_PER_WINDOW: u32 = 20;
/// The length of a window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Sessions tracked at once; the oldest windows are evicted past this.
pub const MAX_SESSIONS: usize = 4096;

/// Refusals counted but not recorded individually, all sessions, since the process started.
static UNRECORDED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Refusals counted but not recorded individually, process-wide (for `/metrics`).
pub fn unrecorded_total() -> u64 {
    UNRECORDED_TOTAL.load(Ordering::Relaxed)
}

/// One session's current window.
struct Window {
    started: Instant,
    recorded: u32,
    suppressed: u64,
    /// The first refusal not recorded, the template of the window's summary record.
    first_suppressed: Option<AuditEvent>,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            started: now,
            recorded: 0,
            suppressed: 0,
            first_suppressed: None,
        }
    }

    /// The summary record of a window with suppressed refusals.
    fn summary(self) -> Option<AuditEvent> {
        let n = self.suppressed;
        self.first_suppressed.filter(|_| n > 0).map(|e| {
            e.renewed()
                .reason(format!("{n} similar denials not recorded individually"))
        })
    }
}

/// The sessions' windows, and when ended ones were last swept out.
struct Table {
    windows: HashMap<String, Window>,
    swept: Instant,
}

/// What to do with one refusal.
pub struct Verdict {
    /// Record it (audit and info log line); otherwise it has been counted.
    pub record: bool,
    /// Records to write first: summaries of windows that ended.
    pub summaries: Vec<AuditEvent>,
}

/// The per-session rate limit (see the module documentation).
pub struct Denials {
    sessions: Mutex<Table>,
    per_window: u32,
    window: Duration,
    max_sessions: usize,
    unrecorded: AtomicU64,
}

impl Default for Denials {
    fn default() -> Denials {
        Denials::new(RECORDED_PER_WINDOW, WINDOW, MAX_SESSIONS)
    }
}

impl Denials {
    pub fn new(per_window: u32, window: Duration, max_sessions: usize) -> Denials {
        Denials {
            sessions: Mutex::new(Table {
                windows: HashMap::new(),
                swept: Instant::now(),
            }),
            per_window,
            window,
            max_sessions: max_sessions.max(1),
            unrecorded: AtomicU64::new(0),
        }
    }

    /// Refusals this table counted but did not let through to be recorded.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    /// Counts `event` (a refusal of `event.session_id`) and says whether to record it.
    pub fn admit(&self, event: &AuditEvent) -> Verdict {
        self.admit_at(event, Instant::now())
    }

    fn admit_at(&self, event: &AuditEvent, now: Instant) -> Verdict {
        let mut summaries = Vec::new();
        let Some(session) = event.session_id.as_deref() else {
            return Verdict {
                record: true,
                summaries,
            };
        };
        // Nothing below can panic while the lock is held; a poisoned table is still usable.
        let mut table = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(table.swept) >= self.window {
            table.swept = now;
            self.sweep(&mut table.windows, now, &mut summaries);
        }
        let sessions = &mut table.windows;
        if !sessions.contains_key(session) && sessions.len() >= self.max_sessions {
            self.evict(sessions, now, &mut summaries);
        }
        let window = sessions
            .entry(session.to_owned())
            .or_insert_with(|| Window::new(now));
        if now.saturating_duration_since(window.started) >= self.window {
            let ended = std::mem::replace(window, Window::new(now));
            summaries.extend(ended.summary());
        }
        let record = window.recorded < self.per_window;
        if record {
            window.recorded += 1;
        } else {
            window.suppressed += 1;
            if window.first_suppressed.is_none() {
                window.first_suppressed = Some(event.clone());
                tracing::warn!(
                    session,
                    recorded = self.per_window,
                    window_s = self.window.as_secs(),
                    "further file access denials of this session are counted, not recorded individually, until the window ends"
                );
            }
            self.unrecorded.fetch_add(1, Ordering::Relaxed);
            UNRECORDED_TOTAL.fetch_add(1, Ordering::Relaxed);
        }
        Verdict { record, summaries }
    }

    /// Drops every ended window, keeping their summaries.
    fn sweep(
        &self,
        sessions: &mut HashMap<String, Window>,
        now: Instant,
        summaries: &mut Vec<AuditEvent>,
    ) {
        let ended: Vec<String> = sessions
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.started) >= self.window)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            if let Some(w) = sessions.remove(&key) {
                summaries.extend(w.summary());
            }
        }
    }

    /// Frees room: drops every ended window, or else the oldest one, keeping their summaries.
    fn evict(
        &self,
        sessions: &mut HashMap<String, Window>,
        now: Instant,
        summaries: &mut Vec<AuditEvent>,
    ) {
        self.sweep(sessions, now, summaries);
        if sessions.len() < self.max_sessions {
            return;
        }
        let oldest = sessions
            .iter()
            .min_by_key(|(_, w)| w.started)
            .map(|(k, _)| k.clone());
        if let Some(w) = oldest.and_then(|k| sessions.remove(&k)) {
            summaries.extend(w.summary());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Outcome};
    use crate::identity::Principal;

    fn refusal(session: &str) -> AuditEvent {
        let mut p = Principal::cli();
        p.client.session_id = session.into();
        AuditEvent::by(&p, Action::Stat, Outcome::Denied).path("/hidden")
    }

    #[test]
    fn a_window_ending_with_suppressed_denials_yields_one_summary() {
        let d = Denials::new(2, Duration::from_secs(10), 16);
        let t0 = Instant::now();
        let kept: Vec<bool> = (0..5)
            .map(|_| d.admit_at(&refusal("a"), t0).record)
            .collect();
        assert_eq!(kept, [true, true, false, false, false]);
        assert_eq!(d.unrecorded(), 3);
        let next = d.admit_at(&refusal("a"), t0 + Duration::from_secs(11));
        assert!(next.record);
        assert_eq!(next.summaries.len(), 1);
        assert_eq!(
            next.summaries[0].reason.as_deref(),
            Some("3 similar denials not recorded individually")
        );
        assert_eq!(next.summaries[0].session_id.as_deref(), Some("a"));
    }

    #[test]
    fn the_session_table_stays_bounded_and_evicted_windows_keep_their_summary() {
        let d = Denials::new(1, Duration::from_secs(10), 4);
        let t0 = Instant::now();
        d.admit_at(&refusal("s0"), t0);
        d.admit_at(&refusal("s0"), t0); // suppressed
        let mut summaries = Vec::new();
        for i in 1..100 {
            let v = d.admit_at(&refusal(&format!("s{i}")), t0 + Duration::from_millis(i));
            summaries.extend(v.summaries);
        }
        assert!(d.sessions.lock().unwrap().windows.len() <= 4);
        assert_eq!(summaries.len(), 1, "only s0 had suppressed denials");
        assert_eq!(summaries[0].session_id.as_deref(), Some("s0"));
    }
}
