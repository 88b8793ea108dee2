use super::*;
use crate::audit::{Action, Outcome};
use crate::identity::Principal;
use crate::test_support::TempDir;
use std::io::Write;

fn event(n: u64) -> AuditEvent {
    let mut e = AuditEvent::by(&Principal::cli(), Action::Rename, Outcome::Failed)
        .path(format!("/a/{n} \"quoted\"\nnewline"))
        .destination("/b/é")
        .reason("why")
        .bytes(n);
    e.remote_addr = Some("127.0.0.1".into());
    e
}

/// Replays everything, returning what was handed over.
// `while let Some(_)` keeps the replay's temporaries alive for the loop body, on purpose.
#[allow(clippy::redundant_pattern_matching)]
async fn drain(journal: &Journal) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    while let Some(_) = journal
        .replay_oldest(4, |events| {
            out.extend(events);
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap()
    {}
    out
}

#[tokio::test]
async fn appended_records_are_replayed_in_order_and_the_journal_is_emptied() {
    let dir = TempDir::new("journal");
    let journal = Journal::open(dir.path()).unwrap();
    let events: Vec<AuditEvent> = (0..10).map(event).collect();
    journal.append(&events[..3]).unwrap();
    journal.append(&events[3..]).unwrap();
    assert_eq!(journal.records(), 10);
    // Another process (a restart) sees the same records.
    let reopened = Journal::open(dir.path()).unwrap();
    assert_eq!(reopened.records(), 10);
    assert_eq!(drain(&reopened).await, events);
    assert!(reopened.is_empty());
    assert_eq!(reopened.records(), 0);
    assert_eq!(reopened.bytes(), 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_torn_tail_and_a_corrupt_line_are_skipped_not_fatal() {
    let dir = TempDir::new("journal");
    let journal = Journal::open(dir.path()).unwrap();
    let events: Vec<AuditEvent> = (0..5).map(event).collect();
    journal.append(&events).unwrap();
    drop(journal);
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Flip one byte inside the second record's JSON, then a torn (half-written) record.
    let mut data = std::fs::read(&segment).unwrap();
    let second = data.iter().position(|b| *b == b'\n').unwrap() + 1;
    data[second + 20] ^= 0x01;
    std::fs::write(&segment, &data).unwrap();
    let mut tail = Vec::new();
    encode(&event(99), &mut tail);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&tail[..tail.len() / 2]).unwrap();
    drop(file);

    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.records(), 4);
    let replayed = drain(&journal).await;
    let mut expected = events.clone();
    expected.remove(1);
    assert_eq!(replayed, expected);
    assert_eq!(journal.corrupt(), 2);
    assert!(journal.is_empty());
    // Writes after a reopen go to a new segment, never after the torn tail.
    journal.append(&events[..1]).unwrap();
    assert_eq!(drain(&journal).await, events[..1].to_vec());
}

#[tokio::test]
async fn a_failed_take_keeps_the_segment_for_the_next_replay() {
    let dir = TempDir::new("journal");
    let journal = Journal::open(dir.path()).unwrap();
    let events: Vec<AuditEvent> = (0..10).map(event).collect();
    journal.append(&events).unwrap();
    let mut calls = 0;
    let result = journal
        .replay_oldest(4, |_| {
            calls += 1;
            let fail = calls == 2;
            async move { if fail { Err("store down") } else { Ok(()) } }
        })
        .await;
    assert_eq!(result, Err("store down"));
    assert_eq!(journal.records(), 10);
    // The whole segment again (the first batch twice: the store keeps one row by key).
    let replayed = drain(&journal).await;
    assert_eq!(replayed, events);
}

#[tokio::test]
async fn segments_rotate_and_replay_oldest_first() {
    let dir = TempDir::new("journal");
    let journal = Journal::open(dir.path()).unwrap();
    let big = AuditEvent::by(&Principal::cli(), Action::Upload, Outcome::Ok)
        .path("x".repeat(1000))
        .reason("y".repeat(100_000));
    let mut all = Vec::new();
    for n in 0..60 {
        let e = big.clone().renewed().bytes(n);
        journal.append(std::slice::from_ref(&e)).unwrap();
        all.push(e);
    }
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segments >= 2, "{segments} segment(s)");
    assert_eq!(drain(&journal).await, all);
}

#[tokio::test]
async fn every_action_protocol_and_outcome_survives_the_journal() {
    // A record whose action or protocol the reader did not know was dropped at replay
    // (console uploads and SFTP fsync were, before `named_enum!`).
    let dir = TempDir::new("journal-names");
    let journal = Journal::open(dir.path()).unwrap();
    let mut events = Vec::new();
    for (i, action) in Action::ALL.iter().enumerate() {
        for protocol in Protocol::ALL {
            let outcome = Outcome::ALL[i % Outcome::ALL.len()];
            let mut e = AuditEvent::by(&Principal::cli(), *action, outcome).path(format!("/{i}"));
            e.protocol = *protocol;
            events.push(e);
        }
    }
    journal.append(&events).unwrap();
    assert_eq!(drain(&journal).await, events);
}

#[tokio::test]
async fn segments_admin_commands_left_are_adopted_after_the_replicas_own_in_order() {
    let dir = TempDir::new("journal");
    let (one, two) = (event(1), event(2));
    let own = Journal::open(dir.path()).unwrap();
    own.append(std::slice::from_ref(&one)).unwrap();
    drop(own);
    // Two admin commands journaled into folders of their own (the store did not answer).
    let first = dir.path().join(format!("{ADMIN_PREFIX}100-aa"));
    let admin = Journal::open(&first).unwrap();
    admin.append(std::slice::from_ref(&two)).unwrap();
    drop(admin);
    let empty = dir.path().join(format!("{ADMIN_PREFIX}200-bb"));
    Journal::open(&empty).unwrap();
    assert!(holds_no_segment(&empty) && !holds_no_segment(&first));
    assert_eq!(adopt_admin_segments(dir.path()).unwrap(), 1);
    assert!(!first.exists() && !empty.exists(), "their folders are gone");
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(drain(&journal).await, vec![one, two]);
    assert_eq!(adopt_admin_segments(dir.path()).unwrap(), 0);
}
