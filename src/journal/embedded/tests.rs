use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;

const HOUR: i64 = 3_600_000_000;

fn entry(id: &str) -> Entry {
    Entry {
        source: "insightiq".into(),
        received_at: 1,
        source_ip: "127.0.0.1".into(),
        event: "CONTENTS.ADDED".into(),
        id: id.into(),
        name: None,
        dedup_key: Some(id.into()),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(format!("{{\"id\":\"{id}\",\"event\":\"CONTENTS.ADDED\"}}")),
    }
}

fn options() -> Options {
    Options { max_bytes: 1 << 30, queue: 1024, max_batch: 256, cache: 16 << 20 }
}

fn open(dir: &Path, clock: &ManualClock) -> EmbeddedJournal {
    EmbeddedJournal::open(dir, options(), Arc::new(clock.clone()), None).expect("open journal")
}

#[tokio::test]
async fn appends_get_increasing_sequence_numbers_and_read_back_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(j.append(entry(id), HOUR).await, Ok(Appended::Stored { seq: i as u64 }));
    }
    let records = j.read(1, 10).await.expect("read");
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(records[0].entry, entry("b"));
    let s = j.stats();
    assert_eq!((s.next_seq, s.first_seq, s.entries, s.keys), (3, 0, 3, 3));
}

#[tokio::test]
async fn duplicate_within_ttl_is_acknowledged_and_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Stored { seq: 0 }));
    clock.advance(HOUR - 1);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Duplicate { seq: 0 }));
    assert_eq!(j.stats().entries, 1);
    assert_eq!(j.read(0, 10).await.expect("read").len(), 1);
}

#[tokio::test]
async fn key_is_free_again_after_its_ttl_even_before_pruning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    j.append(entry("a"), HOUR).await.expect("append");
    clock.advance(HOUR);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Stored { seq: 1 }));
    assert_eq!(j.stats().keys, 1, "the key was replaced, not added twice");
    // The renewed key is held for a full TTL from its new write.
    clock.advance(HOUR - 1);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Duplicate { seq: 1 }));
}

#[tokio::test]
async fn pruning_forgets_only_expired_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    j.append(entry("old"), HOUR).await.expect("append");
    clock.advance(HOUR / 2);
    j.append(entry("new"), HOUR).await.expect("append");
    clock.advance(HOUR / 2);
    assert_eq!(j.prune_keys().await, Ok(1));
    assert_eq!(j.stats().keys, 1);
    assert_eq!(j.append(entry("new"), HOUR).await, Ok(Appended::Duplicate { seq: 1 }));
    assert_eq!(j.append(entry("old"), HOUR).await, Ok(Appended::Stored { seq: 2 }));
    assert_eq!(j.prune_keys().await, Ok(0));
}

#[tokio::test]
async fn concurrent_deliveries_of_one_new_id_store_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = Arc::new(open(dir.path(), &clock));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move { j.append(entry("same"), HOUR).await }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.expect("task").expect("append") {
            Appended::Stored { seq } => {
                assert_eq!(seq, 0);
                stored += 1;
            }
            Appended::Duplicate { seq } => assert_eq!(seq, 0),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(j.stats().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commits = Arc::new(AtomicUsize::new(0));
    let appends = Arc::new(AtomicUsize::new(0));
    let (c, a) = (Arc::clone(&commits), Arc::clone(&appends));
    let observer: CommitObserver = Arc::new(move |n, _| {
        c.fetch_add(1, Ordering::SeqCst);
        a.fetch_add(n, Ordering::SeqCst);
    });
    let j = Arc::new(
        EmbeddedJournal::open(dir.path(), options(), Arc::new(ManualClock::new(0)), Some(observer)).expect("open"),
    );
    let mut tasks = Vec::new();
    for i in 0..500 {
        let j = Arc::clone(&j);
        tasks.push(tokio::spawn(async move { j.append(entry(&format!("id-{i}")), HOUR).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.expect("task"), Ok(Appended::Stored { .. })));
    }
    assert_eq!(appends.load(Ordering::SeqCst), 500);
    assert!(
        commits.load(Ordering::SeqCst) < 500,
        "group commit should batch: {} commits",
        commits.load(Ordering::SeqCst)
    );
    // Every sequence number 0..500 used exactly once.
    let seqs: Vec<u64> = j.read(0, 1000).await.expect("read").iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..500).collect::<Vec<_>>());
}

#[tokio::test]
async fn keys_and_sequence_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    {
        let j = open(dir.path(), &clock);
        j.append(entry("a"), HOUR).await.expect("append");
        j.append(entry("b"), HOUR).await.expect("append");
        j.close();
    }
    let j = open(dir.path(), &clock);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Duplicate { seq: 0 }));
    assert_eq!(j.append(entry("c"), HOUR).await, Ok(Appended::Stored { seq: 2 }));
    let s = j.stats();
    assert_eq!((s.next_seq, s.entries, s.keys), (3, 3, 3));
}

#[tokio::test]
async fn trim_stops_at_the_slowest_checkpoint_and_never_reuses_sequence_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    for i in 0..10 {
        j.append(entry(&format!("e{i}")), HOUR).await.expect("append");
    }
    assert_eq!(j.trim().await, Ok(0), "no consumer: nothing may be trimmed");
    j.commit_checkpoint("lake", 7).await.expect("checkpoint");
    j.commit_checkpoint("enrich", 4).await.expect("checkpoint");
    assert_eq!(j.checkpoint("enrich").await, Ok(Some(4)));
    assert_eq!(j.checkpoint("nobody").await, Ok(None));
    assert_eq!(j.trim().await, Ok(4));
    let s = j.stats();
    assert_eq!((s.first_seq, s.entries, s.next_seq), (4, 6, 10));
    assert_eq!(j.read(0, 100).await.expect("read").first().map(|r| r.seq), Some(4));
    // Trimmed events' keys are still held: a late retry is still a duplicate.
    assert_eq!(j.append(entry("e0"), HOUR).await, Ok(Appended::Duplicate { seq: 0 }));
    // A consumer that is gone no longer holds back the others.
    assert_eq!(j.consumers().await, Ok(vec!["enrich".to_owned(), "lake".to_owned()]));
    j.forget_consumer("enrich").await.expect("forget");
    j.commit_checkpoint("lake", 10).await.expect("checkpoint");
    assert_eq!(j.trim().await, Ok(6));
    j.close();
    let j = open(dir.path(), &clock);
    assert_eq!(j.append(entry("new"), HOUR).await, Ok(Appended::Stored { seq: 10 }), "seq is never reused");
    assert_eq!(j.stats().first_seq, 10);
}

#[tokio::test]
async fn over_budget_appends_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = super::super::record::encode(&entry("a"), 0).len() as u64;
    let opts = Options { max_bytes: size * 2, ..options() };
    let j = EmbeddedJournal::open(dir.path(), opts, Arc::new(ManualClock::new(0)), None).expect("open");
    j.append(entry("a"), HOUR).await.expect("fits");
    j.append(entry("b"), HOUR).await.expect("fits");
    assert!(matches!(j.append(entry("c"), HOUR).await, Err(JournalError::Full { .. })));
    assert_eq!(j.stats().entries, 2);
    // The refused key is not held: once there is room, the retry is stored.
    j.commit_checkpoint("lake", 2).await.expect("checkpoint");
    j.trim().await.expect("trim");
    assert_eq!(j.append(entry("c"), HOUR).await, Ok(Appended::Stored { seq: 2 }));
}

#[tokio::test]
async fn a_second_process_cannot_open_a_held_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let _j = open(dir.path(), &clock);
    let second = EmbeddedJournal::open(dir.path(), options(), Arc::new(clock), None);
    assert!(matches!(second, Err(JournalError::InUse)));
    assert!(JournalError::InUse.to_string().contains("is `hooklake run` still running"));
}

#[tokio::test]
async fn entries_without_a_key_are_always_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = open(dir.path(), &ManualClock::new(0));
    let mut e = entry("x");
    e.dedup_key = None;
    assert_eq!(j.append(e.clone(), 0).await, Ok(Appended::Stored { seq: 0 }));
    assert_eq!(j.append(e, 0).await, Ok(Appended::Stored { seq: 1 }));
    assert_eq!(j.stats().keys, 0);
}

#[tokio::test]
async fn an_intent_survives_a_reopen_and_is_cleared_by_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    {
        let j = open(dir.path(), &clock);
        j.record_intent("sink.lake", b"0..=9".to_vec()).await.expect("intent");
        j.close();
    }
    let j = open(dir.path(), &clock);
    assert_eq!(j.intent("sink.lake").await, Ok(Some(b"0..=9".to_vec())));
    assert_eq!(j.intent("other").await, Ok(None));
    j.commit_checkpoint("sink.lake", 10).await.expect("checkpoint");
    assert_eq!(j.intent("sink.lake").await, Ok(None));
    assert_eq!(j.checkpoint("sink.lake").await, Ok(Some(10)));
}

#[tokio::test]
async fn subscribers_see_new_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = open(dir.path(), &ManualClock::new(0));
    let mut rx = j.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    j.append(entry("a"), HOUR).await.expect("append");
    rx.changed().await.expect("changed");
    assert_eq!(*rx.borrow(), 1);
}

#[tokio::test]
async fn keys_are_rebuilt_from_events_above_the_indexed_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    {
        let j = open(dir.path(), &clock);
        j.append(entry("a"), HOUR).await.expect("append");
        j.close();
    }
    // Simulate a crash after more appends but before indexing: write events with keys directly, as the append
    // transaction does, without touching `keys` or `indexed_upto`.
    inject_events(dir.path(), &[(1, "b"), (2, "c")], 3);
    let j = open(dir.path(), &clock);
    assert_eq!(j.append(entry("b"), HOUR).await, Ok(Appended::Duplicate { seq: 1 }), "rebuilt from its event");
    assert_eq!(j.append(entry("c"), HOUR).await, Ok(Appended::Duplicate { seq: 2 }));
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Duplicate { seq: 0 }), "indexed before");
    assert_eq!(j.append(entry("d"), HOUR).await, Ok(Appended::Stored { seq: 3 }));
    // Trim indexes first, so trimmed events never take their keys with them.
    j.commit_checkpoint("lake", 4).await.expect("checkpoint");
    assert_eq!(j.trim().await, Ok(4));
    assert_eq!(j.append(entry("b"), HOUR).await, Ok(Appended::Duplicate { seq: 1 }));
    assert_eq!(j.stats().keys, 4);
}

#[tokio::test]
async fn a_crash_before_the_first_index_still_rebuilds_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    open(dir.path(), &clock).close();
    // Appends that reached the disk, then `kill -9` before any index transaction: only the events exist.
    inject_events(dir.path(), &[(0, "a"), (1, "b")], 2);
    let j = open(dir.path(), &clock);
    assert_eq!(j.append(entry("a"), HOUR).await, Ok(Appended::Duplicate { seq: 0 }));
    assert_eq!(j.append(entry("b"), HOUR).await, Ok(Appended::Duplicate { seq: 1 }));
}

/// Writes events with keys straight into the database, as an append transaction does, without indexing their
/// keys: the state a `kill -9` leaves between an append and the next index transaction.
fn inject_events(dir: &Path, events: &[(u64, &str)], next_seq: u64) {
    let db = redb::Database::create(dir.join(FILE_NAME)).expect("db");
    let txn = db.begin_write().expect("txn");
    {
        let mut table = txn.open_table(EVENTS).expect("events");
        let mut meta = txn.open_table(META).expect("meta");
        for (seq, id) in events {
            let record = super::super::record::encode(&entry(id), HOUR);
            table.insert(*seq, record.as_slice()).expect("insert");
        }
        meta.insert("next_seq", next_seq).expect("meta");
    }
    txn.commit().expect("commit");
}

#[tokio::test]
async fn stage_outputs_land_with_the_checkpoint_survive_a_reopen_and_are_trimmed_with_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    {
        let j = open(dir.path(), &clock);
        for id in ["a", "b", "c", "d"] {
            j.append(entry(id), HOUR).await.expect("append");
        }
        j.commit_checkpoint("sink.raw", 0).await.expect("checkpoint");
        // Seq 1 was skipped by the stage (no output); the checkpoint moves past it.
        j.hand_on("transform.enrich", vec![(0, b"zero".to_vec()), (2, b"two".to_vec())], 3).await.expect("hand on");
        let out = j.read_outputs("transform.enrich", 0, 10).await.expect("read");
        assert_eq!(out.upto, 3);
        assert_eq!(out.outputs, vec![(0, b"zero".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(j.stats().output_bytes, 7);
        j.close();
    }
    let j = open(dir.path(), &clock);
    assert_eq!(j.checkpoint("transform.enrich").await.expect("checkpoint"), Some(3));
    assert_eq!(j.read_outputs("transform.enrich", 1, 10).await.expect("read").outputs, vec![(2, b"two".to_vec())]);
    assert_eq!(j.stats().output_bytes, 7);
    // The slowest consumer (sink.raw at 0) holds everything back; once it passes seq 2, both go.
    assert_eq!(j.trim().await.expect("trim"), 0);
    j.commit_checkpoint("sink.raw", 4).await.expect("checkpoint");
    assert!(j.trim().await.expect("trim") > 0);
    let out = j.read_outputs("transform.enrich", 0, 10).await.expect("read");
    assert!(out.outputs.is_empty(), "outputs below every checkpoint are trimmed: {:?}", out.outputs);
    assert_eq!(j.stats().output_bytes, 0);
    assert_eq!(j.stats().first_seq, 3);
}

#[tokio::test]
async fn forgetting_a_stage_drops_its_outputs_and_output_bytes_count_against_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let small = Options { max_bytes: 400, ..options() };
    let j = EmbeddedJournal::open(dir.path(), small, Arc::new(clock.clone()), None).expect("open");
    j.append(entry("a"), HOUR).await.expect("append");
    j.hand_on("transform.enrich", vec![(0, vec![b'x'; 300])], 1).await.expect("hand on");
    assert!(matches!(j.append(entry("b"), HOUR).await, Err(JournalError::Full { .. })), "outputs use the budget");
    j.forget_consumer("transform.enrich").await.expect("forget");
    assert_eq!(j.stats().output_bytes, 0);
    assert!(j.read_outputs("transform.enrich", 0, 10).await.expect("read").outputs.is_empty());
    assert!(matches!(j.append(entry("b"), HOUR).await, Ok(Appended::Stored { .. })));
}

#[tokio::test]
async fn a_stage_alone_keeps_its_outputs_for_inspection_while_its_events_are_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(0);
    let j = open(dir.path(), &clock);
    j.append(entry("a"), HOUR).await.expect("append");
    j.hand_on("transform.enrich", vec![(0, b"zero".to_vec())], 1).await.expect("hand on");
    assert_eq!(j.trim().await.expect("trim"), 1, "the event itself is no longer needed");
    assert_eq!(j.read_outputs("transform.enrich", 0, 10).await.expect("read").outputs.len(), 1);
}

/// One step of the model-based journal test.
#[derive(Debug, Clone)]
enum Op {
    /// Append the event with this id (a small pool, so retries of stored ids are frequent).
    Append(u8),
    /// Close and open again.
    Reopen,
    /// `kill -9` right after these ids were appended durably but before their keys were indexed.
    CrashAfter(Vec<u8>),
    /// Move consumer `0` or `1` to `fraction` of the way from its checkpoint to the end.
    Checkpoint(u8, u8),
    /// Forget consumer `0` or `1`.
    Forget(u8),
    /// Trim below the slowest consumer.
    Trim,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0u8..24).prop_map(Op::Append),
        1 => Just(Op::Reopen),
        1 => proptest::collection::vec(0u8..24, 1..4).prop_map(Op::CrashAfter),
        2 => (0u8..2, 0u8..=4).prop_map(|(c, f)| Op::Checkpoint(c, f)),
        1 => (0u8..2).prop_map(Op::Forget),
        2 => Just(Op::Trim),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Random interleavings of appends, reopens, crashes between an append and its indexing, checkpoints,
    /// forgotten consumers and trims, against a model: an id is stored once under the next sequence number,
    /// a retry is answered with the original's seq (trimmed or not, before or after a crash), sequence numbers
    /// never go back, and trimming keeps everything at or above the slowest checkpoint.
    #[test]
    fn the_journal_agrees_with_its_model_through_any_interleaving(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let clock = ManualClock::new(0);
            let mut j = Some(open(dir.path(), &clock));
            let mut stored: std::collections::BTreeMap<String, u64> = Default::default();
            let mut next = 0u64;
            let mut first = 0u64;
            let mut checkpoints: [Option<u64>; 2] = [None, None];
            let consumer = |c: u8| if c == 0 { "sink.a" } else { "transform.b" };
            for op in ops {
                let journal = j.as_ref().expect("open");
                match op {
                    Op::Append(n) => {
                        let id = format!("id-{n}");
                        let got = journal.append(entry(&id), 100 * HOUR).await.expect("append");
                        match stored.get(&id) {
                            Some(seq) => assert_eq!(got, Appended::Duplicate { seq: *seq }, "{id}"),
                            None => {
                                assert_eq!(got, Appended::Stored { seq: next }, "{id}");
                                stored.insert(id, next);
                                next += 1;
                            }
                        }
                    }
                    Op::Reopen => {
                        j.take().expect("open").close();
                        j = Some(open(dir.path(), &clock));
                    }
                    Op::CrashAfter(ids) => {
                        j.take().expect("open").close();
                        let fresh: Vec<(u64, String)> = ids
                            .iter()
                            .map(|n| format!("id-{n}"))
                            .filter(|id| !stored.contains_key(id))
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .enumerate()
                            .map(|(i, id)| (next + i as u64, id))
                            .collect();
                        let events: Vec<(u64, &str)> = fresh.iter().map(|(s, id)| (*s, id.as_str())).collect();
                        inject_events(dir.path(), &events, next + fresh.len() as u64);
                        for (seq, id) in fresh {
                            stored.insert(id, seq);
                            next = seq + 1;
                        }
                        j = Some(open(dir.path(), &clock));
                    }
                    Op::Checkpoint(c, fraction) => {
                        let from = checkpoints[usize::from(c)].unwrap_or(first);
                        let to = from + (next.saturating_sub(from)) * u64::from(fraction) / 4;
                        journal.commit_checkpoint(consumer(c), to).await.expect("checkpoint");
                        checkpoints[usize::from(c)] = Some(to);
                    }
                    Op::Forget(c) => {
                        journal.forget_consumer(consumer(c)).await.expect("forget");
                        checkpoints[usize::from(c)] = None;
                    }
                    Op::Trim => {
                        while journal.trim().await.expect("trim") > 0 {}
                        if let Some(slowest) = checkpoints.iter().flatten().min() {
                            first = first.max(*slowest);
                        }
                    }
                }
                let journal = j.as_ref().expect("open");
                let stats = journal.stats();
                assert_eq!((stats.next_seq, stats.first_seq), (next, first), "after {:?}", stored);
                let seqs: Vec<u64> = journal.read(0, 10_000).await.expect("read").iter().map(|r| r.seq).collect();
                let want: Vec<u64> = stored.values().copied().filter(|s| *s >= first).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                assert_eq!(seqs, want);
            }
            j.take().expect("open").close();
        });
    }
}
