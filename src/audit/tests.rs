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
    for n in 0..1000 {
        log.record(event(n));
    }
    // Let the overflow tasks enqueue, then stop.
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.shutdown().await;
    let rows = memory.rows.lock().unwrap();
    assert_eq!(rows.len(), 1000);
    let mut seen: Vec<i64> = rows.iter().map(|e| e.bytes.unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..1000).collect::<Vec<i64>>());
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
