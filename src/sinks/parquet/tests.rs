use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;
use crate::journal::embedded::{EmbeddedJournal, Options};
use crate::journal::{Entry, Journal};

fn entry(id: &str, received_at: i64) -> Entry {
    Entry {
        source: "insightiq".into(),
        received_at,
        source_ip: "127.0.0.1".into(),
        event: "CONTENTS.ADDED".into(),
        id: id.into(),
        name: None,
        dedup_key: Some(id.into()),
        headers: vec![],
        body: Bytes::from(format!(r#"{{"event":"CONTENTS.ADDED","id":"{id}","data":{{"account_id":"a"}}}}"#)),
    }
}

const DAY: i64 = 86_400_000_000;

#[test]
fn roll_is_due_on_rows_bytes_or_age_and_never_when_empty() {
    let roll = Roll { rows: 10, bytes: 1000, interval: Duration::from_secs(60) };
    assert!(!roll.due(0, 5000, Duration::from_secs(600)), "nothing to write");
    assert!(!roll.due(9, 999, Duration::from_secs(59)));
    assert!(roll.due(10, 0, Duration::ZERO));
    assert!(roll.due(1, 1000, Duration::ZERO));
    assert!(roll.due(1, 0, Duration::from_secs(60)));
}

#[test]
fn a_flush_over_midnight_becomes_one_file_per_date_each_named_by_its_own_range() {
    let records: Vec<Record> = (0..6u64)
        .map(|seq| Record { seq: 10 + seq, entry: entry(&format!("e{seq}"), 20_000 * DAY - 3 + seq as i64) })
        .collect();
    let files = plan(&records, &["date".to_owned()], &object_store::path::Path::from("lake"), EVENTS);
    let names: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
    assert_eq!(
        names,
        vec![
            format!("lake/events/date=2024-10-03/{}", file_name(10, 12)),
            format!("lake/events/date=2024-10-04/{}", file_name(13, 15)),
        ]
    );
    assert_eq!(files[0].records.len(), 3);
    // Deterministic: planning the same records again gives the same names.
    let again: Vec<String> = plan(&records, &["date".to_owned()], &object_store::path::Path::from("lake"), EVENTS)
        .iter()
        .map(|f| f.path.to_string())
        .collect();
    assert_eq!(again, names);
}

fn open_journal(dir: &std::path::Path) -> Arc<dyn Journal> {
    let options = Options { max_bytes: 1 << 30, queue: 64, max_batch: 64, cache: 16 << 20 };
    Arc::new(EmbeddedJournal::open(dir, options, Arc::new(ManualClock::new(0)), None).expect("journal"))
}

/// Runs `sink` for a moment, then stops it (it writes everything buffered) and checks it ended cleanly.
async fn run_then_stop(sink: ParquetSink, journal: &Arc<dyn Journal>) {
    let (tx, rx) = crate::shutdown::channel();
    let task = tokio::spawn(sink.run(Arc::clone(journal), rx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(true).expect("stop");
    task.await.expect("task").expect("sink ok");
}

fn sink_config(dir: &std::path::Path) -> ParquetConfig {
    ParquetConfig {
        location: Location::Local(dir.to_path_buf()),
        options: vec![],
        codec: Codec::Zstd,
        partition_by: vec!["date".into()],
        roll_rows: 4,
        roll_bytes: 1 << 30,
        roll_interval: Duration::from_secs(3600),
        row_group_rows: 1000,
    }
}

fn lake_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).expect("prefix").display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_sink_writes_rolled_files_flushes_the_rest_at_shutdown_and_checkpoints() {
    let data = tempfile::tempdir().expect("tempdir");
    let lake = tempfile::tempdir().expect("tempdir");
    let journal = open_journal(data.path());
    for i in 0..6 {
        journal.append(entry(&format!("e{i}"), 20_000 * DAY), DAY).await.expect("append");
    }
    let sink = ParquetSink::build("raw", sink_config(lake.path()), Default::default()).expect("sink");
    let (tx, rx) = crate::shutdown::channel();
    let task = tokio::spawn(sink.run(Arc::clone(&journal), rx));
    // roll_rows = 4: the first four become a file without waiting for the interval.
    let want_first = format!("events/date=2024-10-04/{}", file_name(0, 3));
    for _ in 0..200 {
        if lake_files(lake.path()).contains(&want_first) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lake_files(lake.path()), vec![want_first.clone()]);
    tx.send(true).expect("stop");
    task.await.expect("task").expect("sink ok");
    assert_eq!(lake_files(lake.path()), vec![want_first, format!("events/date=2024-10-04/{}", file_name(4, 5))]);
    assert_eq!(journal.checkpoint("sink.raw").await, Ok(Some(6)));
    assert_eq!(journal.intent("sink.raw").await, Ok(None));
}

#[tokio::test]
async fn a_recorded_intent_is_redone_with_the_same_names_and_no_second_copy() {
    let data = tempfile::tempdir().expect("tempdir");
    let lake = tempfile::tempdir().expect("tempdir");
    let journal = open_journal(data.path());
    for i in 0..3 {
        journal.append(entry(&format!("e{i}"), 20_000 * DAY), DAY).await.expect("append");
    }
    // As if a previous run recorded "0..=1", wrote one file, and died before its checkpoint.
    journal.commit_checkpoint("sink.raw", 0).await.expect("checkpoint");
    journal.record_intent("sink.raw", br#"{"first":0,"last":1}"#.to_vec()).await.expect("intent");
    let dir = lake.path().join("events/date=2024-10-04");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("{}#3", file_name(0, 1))), b"partial").expect("leftover");
    let mut config = sink_config(lake.path());
    config.roll_rows = 100;
    let sink = ParquetSink::build("raw", config, Default::default()).expect("sink");
    run_then_stop(sink, &journal).await;
    // The redo wrote exactly 0..=1 (not 0..=2), the rest came after; the leftover is gone.
    assert_eq!(
        lake_files(lake.path()),
        vec![
            format!("events/date=2024-10-04/{}", file_name(0, 1)),
            format!("events/date=2024-10-04/{}", file_name(2, 2)),
        ]
    );
    assert_eq!(journal.checkpoint("sink.raw").await, Ok(Some(3)));
}

#[tokio::test]
async fn a_sink_writes_only_the_events_of_the_sources_its_inputs_lead_to() {
    let data = tempfile::tempdir().expect("tempdir");
    let lake = tempfile::tempdir().expect("tempdir");
    let journal = open_journal(data.path());
    for i in 0..6 {
        let mut e = entry(&format!("e{i}"), 20_000 * DAY);
        e.source = if i % 2 == 0 { "mine".into() } else { "other".into() };
        journal.append(e, DAY).await.expect("append");
    }
    // The last events are another source's: the checkpoint must still move past them.
    for i in 6..8 {
        let mut e = entry(&format!("e{i}"), 20_000 * DAY);
        e.source = "other".into();
        journal.append(e, DAY).await.expect("append");
    }
    let mut config = sink_config(lake.path());
    config.roll_rows = 100;
    let sink = ParquetSink::build("raw", config, Default::default())
        .expect("sink")
        .with_sources(["mine".to_owned()].into_iter().collect());
    run_then_stop(sink, &journal).await;
    assert_eq!(lake_files(lake.path()), vec![format!("events/date=2024-10-04/{}", file_name(0, 4))]);
    let file = std::fs::read(lake.path().join(format!("events/date=2024-10-04/{}", file_name(0, 4)))).expect("file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
        .expect("reader")
        .build()
        .expect("build");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 3, "only the three events of `mine`");
    assert_eq!(journal.checkpoint("sink.raw").await, Ok(Some(8)));
}
