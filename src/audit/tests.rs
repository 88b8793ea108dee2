use super::*;
use std::sync::Mutex;

#[derive(Default)]
struct Memory {
    rows: Mutex<Vec<AuditEvent>>,
    fail_first: AtomicU64,
}

#[async_trait::async_trait]
impl AuditPersist for Memory {
    async fn persist(&self, _node: &str, events: &[AuditEvent]) -> Result<(), PersistError> {
        if self.fail_first.load(Ordering::Relaxed) > 0 {
            self.fail_first.fetch_sub(1, Ordering::Relaxed);
            return Err(PersistError("down".into()));
        }
        self.rows.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::by(&Principal::cli(), Action::List, Outcome::Ok).bytes(n)
}

fn settings(queue: usize) -> AuditSettings {
    AuditSettings {
        node: "test".into(),
        queue,
        batch: 7,
    }
}

#[tokio::test]
async fn shutdown_writes_every_queued_event_even_past_the_queue_bound() {
    let memory = Arc::new(Memory::default());
    let log = AuditLog::start(memory.clone(), settings(4));
    // Queue (4) plus overflow buffer (4) at once, with no chance for the writer to run.
    for n in 0..8 {
        log.record(event(n));
    }
    assert_eq!(log.stats().overflow, 4);
    log.shutdown().await;
    assert_eq!(log.dropped(), 0);
    let rows = memory.rows.lock().unwrap();
    let mut seen: Vec<i64> = rows.iter().map(|e| e.bytes.unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_writer_that_keeps_up_loses_nothing_past_the_queue_bound() {
    let memory = Arc::new(Memory::default());
    let log = AuditLog::start(memory.clone(), settings(4));
    for n in 0..1000 {
        log.record(event(n));
        if n % 8 == 7 {
            // Give the writer its turn, as a server's other tasks do.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
    }
    log.shutdown().await;
    assert_eq!(log.dropped(), 0);
    let rows = memory.rows.lock().unwrap();
    let mut seen: Vec<i64> = rows.iter().map(|e| e.bytes.unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..1000).collect::<Vec<i64>>());
}

/// A store that never answers until released.
struct Stalled {
    release: Notify,
    rows: Mutex<usize>,
}

#[async_trait::async_trait]
impl AuditPersist for Stalled {
    async fn persist(&self, _node: &str, events: &[AuditEvent]) -> Result<(), PersistError> {
        self.release.notified().await;
        self.release.notify_one(); // stay open for the next batch
        *self.rows.lock().unwrap() += events.len();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_keeps_the_backlog_bounded_and_counts_what_it_drops() {
    let store = Arc::new(Stalled {
        release: Notify::new(),
        rows: Mutex::new(0),
    });
    let log = AuditLog::start(store.clone(), settings(100));
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    for n in 0..100_000 {
        log.record(event(n));
    }
    let stats = log.stats();
    // Queue (100, less what the writer holds in its stalled batch) plus overflow (100).
    assert!(stats.backlog <= 200, "{stats:?}");
    assert_eq!(stats.overflow, 100, "{stats:?}");
    assert!(stats.dropped >= 100_000 - 200 - 7, "{stats:?}");
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks_before,
        "no task per waiting event"
    );
    // Once the store answers, everything accepted is written.
    store.release.notify_one();
    log.shutdown().await;
    let accepted = 100_000 - stats.dropped;
    assert_eq!(*store.rows.lock().unwrap() as u64, accepted);
    assert_eq!(log.written(), accepted);
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
async fn a_batch_the_store_refuses_is_retried_until_written() {
    let memory = Arc::new(Memory::default());
    memory.fail_first.store(3, Ordering::Relaxed);
    let log = AuditLog::start(memory.clone(), settings(100));
    for n in 0..20 {
        log.record(event(n));
    }
    for _ in 0..100 {
        if log.written() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log.written(), 20);
    log.shutdown().await;
    assert_eq!(memory.rows.lock().unwrap().len(), 20);
}
