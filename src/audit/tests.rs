use super::*;
use crate::test_support::{TempDir, TestDb};
use std::sync::Mutex;

/// An audit store that can be taken down and brought back; keeps one row per `event_key`,
/// as the real store's unique index does.
#[derive(Default)]
struct Switchable {
    rows: Mutex<std::collections::BTreeMap<String, AuditEvent>>,
    down: AtomicBool,
    /// Inserts done (a replayed duplicate counts, and is not a second row).
    inserts: AtomicU64,
}

#[async_trait::async_trait]
impl AuditPersist for Switchable {
    async fn persist(&self, _node: &str, events: &[AuditEvent]) -> Result<(), PersistError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(PersistError("down".into()));
        }
        let mut rows = self.rows.lock().unwrap();
        for e in events {
            self.inserts.fetch_add(1, Ordering::Relaxed);
            rows.entry(e.event_key.clone()).or_insert_with(|| e.clone());
        }
        Ok(())
    }
}

impl Switchable {
    fn bytes_seen(&self) -> Vec<i64> {
        let mut seen: Vec<i64> = self
            .rows
            .lock()
            .unwrap()
            .values()
            .map(|e| e.bytes.unwrap())
            .collect();
        seen.sort();
        seen
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::by(&Principal::cli(), Action::Upload, Outcome::Ok)
        .path(format!("/f/{n}"))
        .bytes(n)
}

fn settings(dir: &TempDir, queue: usize) -> AuditSettings {
    AuditSettings {
        node: "test".into(),
        queue,
        batch: 7,
        journal_dir: dir.path().join("audit-journal"),
        store_timeout: Duration::from_secs(2),
        durable_wait: Duration::from_secs(30),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn shutdown_writes_every_queued_event_when_the_store_answers() {
    let dir = TempDir::new("audit");
    let store = Arc::new(Switchable::default());
    let log = AuditLog::start(store.clone(), settings(&dir, 4)).unwrap();
    // Past the queue (4) with no chance for the writer to run: the rest goes to the journal.
    for n in 0..12 {
        log.record(event(n));
    }
    assert!(log.stats().spilled >= 8, "{:?}", log.stats());
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(log.dropped(), 0);
    // What was spilled to the journal is written at the next start.
    let log = AuditLog::start(store.clone(), settings(&dir, 4)).unwrap();
    until("journal replayed", || log.journal.is_empty()).await;
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(store.bytes_seen(), (0..12).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_with_the_store_down_keeps_memory_bounded_and_loses_nothing() {
    let dir = TempDir::new("audit");
    let store = Arc::new(Switchable::default());
    store.down.store(true, Ordering::Relaxed);
    let log = AuditLog::start(store.clone(), settings(&dir, 16)).unwrap();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut max_backlog = 0;
    for n in 0..20_000 {
        log.record(event(n));
        max_backlog = max_backlog.max(log.backlog());
    }
    assert!(
        max_backlog <= 16,
        "the queue is the only memory: {max_backlog}"
    );
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks_before,
        "no task per waiting event"
    );
    until("everything durable in the journal", || {
        log.journal.records() == 20_000
    })
    .await;
    let stats = log.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.journaled, 20_000, "{stats:?}");
    assert!(stats.journal_bytes > 0, "{stats:?}");
    assert!(store.rows.lock().unwrap().is_empty());
    // The store comes back: the journal is replayed, one row per event.
    store.down.store(false, Ordering::Relaxed);
    until("journal replayed", || log.journal.is_empty()).await;
    let stats = log.stats();
    assert_eq!(stats.replayed, 20_000, "{stats:?}");
    assert_eq!(stats.journal_records, 0, "{stats:?}");
    assert_eq!(store.bytes_seen(), (0..20_000).collect::<Vec<i64>>());
    // The store is used directly again.
    log.record(event(20_000));
    until("written directly", || {
        store.rows.lock().unwrap().len() == 20_001
    })
    .await;
    log.shutdown(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_durable_record_is_acknowledged_once_journaled_while_the_store_is_down() {
    let dir = TempDir::new("audit");
    let store = Arc::new(Switchable::default());
    store.down.store(true, Ordering::Relaxed);
    let log = AuditLog::start(store.clone(), settings(&dir, 4)).unwrap();
    for n in 0..10 {
        log.record_durable(event(n)).await.unwrap();
        // Acknowledged means on disk: a fresh reader of the folder sees it.
        let on_disk = Journal::open(&dir.path().join("audit-journal")).unwrap();
        assert_eq!(on_disk.records(), n + 1);
    }
    assert!(store.rows.lock().unwrap().is_empty());
    store.down.store(false, Ordering::Relaxed);
    until("journal replayed", || log.journal.is_empty()).await;
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(store.bytes_seen(), (0..10).collect::<Vec<i64>>());
}

/// A store that never answers.
struct Hung;

#[async_trait::async_trait]
impl AuditPersist for Hung {
    async fn persist(&self, _node: &str, _events: &[AuditEvent]) -> Result<(), PersistError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn shutdown_with_a_hung_store_ends_and_leaves_the_rest_in_the_journal() {
    let dir = TempDir::new("audit");
    let mut cfg = settings(&dir, 1000);
    cfg.store_timeout = Duration::from_secs(3600);
    let log = AuditLog::start(Arc::new(Hung), cfg.clone()).unwrap();
    for n in 0..50 {
        log.record(event(n));
    }
    // Ends: the store is given part of the grace, then the journal takes the rest.
    log.shutdown(Duration::from_millis(400)).await;
    assert_eq!(log.dropped(), 0);
    assert_eq!(log.journal.records(), 50, "{:?}", log.stats());
    // Next start, store up: replayed.
    let store = Arc::new(Switchable::default());
    let log = AuditLog::start(store.clone(), cfg).unwrap();
    until("journal replayed", || log.journal.is_empty()).await;
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(store.bytes_seen(), (0..50).collect::<Vec<i64>>());
}

#[tokio::test]
async fn replay_into_a_real_store_keeps_one_row_per_event_after_a_crash_mid_replay() {
    let db = TestDb::sqlite().await;
    let dir = TempDir::new("audit");
    let cfg = settings(&dir, 100);
    let events: Vec<AuditEvent> = (0..30).map(event).collect();
    {
        let journal = Journal::open(&cfg.journal_dir).unwrap();
        journal.append(&events[..20]).unwrap();
        journal.append(&events[20..]).unwrap();
        // The same event journaled twice (a batch retried after a lost acknowledgement).
        journal.append(&events[..1]).unwrap();
    }
    // A crash after these rows were inserted but before their segment was deleted.
    db.store.append_audit("test", &events[..12]).await.unwrap();
    let log = AuditLog::start(Arc::new(db.store.clone()), cfg).unwrap();
    until("journal replayed", || log.journal.is_empty()).await;
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(db.store.count_audit().await.unwrap(), 30);
    assert_eq!(log.stats().replayed, 31);
    db.drop().await;
}

#[test]
fn a_long_path_is_cut_in_the_record() {
    let long = format!("/{}", "é".repeat(3000));
    let e = AuditEvent::by(&Principal::cli(), Action::Stat, Outcome::Denied)
        .path(long.clone())
        .destination(long);
    let path = e.path.unwrap();
    assert!(path.len() <= PATH_CAP + '…'.len_utf8(), "{}", path.len());
    assert!(path.ends_with('…'));
    assert!(e.destination.unwrap().ends_with('…'));
    let short = AuditEvent::by(&Principal::cli(), Action::Stat, Outcome::Ok).path("/a/b");
    assert_eq!(short.path.as_deref(), Some("/a/b"));
}

#[tokio::test]
async fn a_batch_the_store_refuses_is_journaled_then_replayed() {
    let dir = TempDir::new("audit");
    let store = Arc::new(Switchable::default());
    store.down.store(true, Ordering::Relaxed);
    let log = AuditLog::start(store.clone(), settings(&dir, 100)).unwrap();
    for n in 0..20 {
        log.record(event(n));
    }
    until("journaled", || log.stats().journaled == 20).await;
    assert!(log.stats().write_failures >= 1);
    store.down.store(false, Ordering::Relaxed);
    until("replayed", || log.written() == 20).await;
    log.shutdown(Duration::from_secs(30)).await;
    assert_eq!(store.bytes_seen(), (0..20).collect::<Vec<i64>>());
}
