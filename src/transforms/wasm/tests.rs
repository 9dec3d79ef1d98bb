//! Host tests with tiny hand-written modules: each misbehaviour fails exactly the event that triggers it, and
//! the next batch maps normally.

use std::path::PathBuf;

use serde_json::json;

use super::host::{Limits, Plugin, engine};
use super::*;

const DESCRIBE: &str = r#"{"name":"t","version":"1","routes":[{"events":["E.*"],"table":"t"}],"tables":{"t":[{"name":"id","type":"string","nullable":false}]}}"#;
const ITEM: &str = r#"{"rows":{"t":[{"id":"x"}]}}"#;

fn wat_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A raw-ABI plugin: it answers one `ITEM` per event (it counts `{`), unless the batch holds a `!`, when it
/// runs `bad` instead. `extra` adds module fields (imports, data).
fn plugin_wat(bad: &str, abi: i32, extra: &str) -> String {
    let fixed = [
        (1024, DESCRIBE.to_owned()),
        (4096, r#"{"results":["#.to_owned()),
        (4200, ITEM.to_owned()),
        (4310, "]}".to_owned()),
        (4400, "not json".to_owned()),
        (4500, r#"{"results":[{"rows":{"t":[{"id":5}]}}]}"#.to_owned()),
        (4600, r#"{"results":[{"error":"cannot map this one"}]}"#.to_owned()),
        (4700, r#"{"results":[{"rows":{"nope":[{"id":"x"}]}}]}"#.to_owned()),
    ];
    let data: String = fixed.iter().map(|(at, s)| format!("(data (i32.const {at}) \"{}\")\n", wat_str(s))).collect();
    let (dlen, ilen) = (DESCRIBE.len(), ITEM.len());
    format!(
        r#"(module
  {extra}
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  {data}
  (func (export "hooklake_abi_version") (result i32) (i32.const {abi}))
  (func $alloc (export "hooklake_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)))))))
    (local.get $p))
  (func (export "hooklake_free") (param i32 i32))
  (func (export "hooklake_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {dlen})))
  (func (export "hooklake_transform") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $n i32) (local $bad i32) (local $out i32) (local $o i32) (local $c i32)
    (block $done (loop $scan
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (if (i32.eq (local.get $c) (i32.const 123)) (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (if (i32.eq (local.get $c) (i32.const 33)) (then (local.set $bad (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    (if (local.get $bad) (then {bad}))
    (local.set $out (call $alloc (i32.add (i32.const 16) (i32.mul (local.get $n) (i32.const {ilen_plus})))))
    (local.set $o (local.get $out))
    (memory.copy (local.get $o) (i32.const 4096) (i32.const 12))
    (local.set $o (i32.add (local.get $o) (i32.const 12)))
    (local.set $i (i32.const 0))
    (block $d2 (loop $emit
      (br_if $d2 (i32.ge_u (local.get $i) (local.get $n)))
      (if (local.get $i) (then
        (i32.store8 (local.get $o) (i32.const 44))
        (local.set $o (i32.add (local.get $o) (i32.const 1)))))
      (memory.copy (local.get $o) (i32.const 4200) (i32.const {ilen}))
      (local.set $o (i32.add (local.get $o) (i32.const {ilen})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $emit)))
    (memory.copy (local.get $o) (i32.const 4310) (i32.const 2))
    (local.set $o (i32.add (local.get $o) (i32.const 2)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $o) (local.get $out))))))
"#,
        ilen_plus = ilen + 1,
    )
}

/// Returns the fixed document at `at` of length `len`.
fn answer(at: usize, len: usize) -> String {
    format!("(return (i64.or (i64.shl (i64.const {at}) (i64.const 32)) (i64.const {len})))")
}

fn limits() -> Limits {
    Limits { memory: 8 << 20, fuel: 50_000_000, max_output: 1 << 20 }
}

fn write(dir: &tempfile::TempDir, name: &str, wat: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, wat).unwrap();
    path
}

fn mapper_for(bad: &str) -> (Mapper, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "p.wat", &plugin_wat(bad, 1, ""));
    let plugin = Plugin::load(&engine(None).unwrap(), &path, limits()).unwrap();
    (Mapper::new("map", vec![plugin], 64), dir)
}

fn docs(n: usize, poisoned: Option<usize>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mark = if poisoned == Some(i) { "!" } else { "" };
            format!(r#"{{"seq":{i},"event":"E.A","x":"{mark}"}}"#).into_bytes()
        })
        .collect()
}

fn map(m: &Mapper, docs: &[Vec<u8>]) -> Vec<Outcome> {
    let refs: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
    m.map(&refs)
}

fn good_row() -> Outcome {
    let mut rows = BTreeMap::new();
    let row = json!({"id": "x"}).as_object().cloned().unwrap();
    rows.insert("t".to_owned(), vec![row]);
    Outcome::Rows(rows)
}

/// Maps a batch with event 1 poisoned: exactly it fails, with a reason containing `expect`; then a clean batch
/// maps in full.
fn only_the_poisoned_event_fails(bad: &str, expect: &str) {
    let (m, _dir) = mapper_for(bad);
    let out = map(&m, &docs(3, Some(1)));
    assert_eq!(out[0], good_row());
    assert_eq!(out[2], good_row());
    match &out[1] {
        Outcome::Failed(reason) => assert!(reason.contains(expect), "reason {reason:?} lacks {expect:?}"),
        other => panic!("the poisoned event was {other:?}"),
    }
    assert_eq!(map(&m, &docs(4, None)), vec![good_row(); 4], "the next batch succeeds");
}

#[test]
fn a_good_plugin_maps_every_event_and_leaves_unclaimed_ones() {
    let (m, _dir) = mapper_for("unreachable");
    assert_eq!(m.tables().keys().collect::<Vec<_>>(), vec!["t"]);
    let mut batch = docs(2, None);
    batch.push(br#"{"seq":9,"event":"OTHER.X"}"#.to_vec());
    assert_eq!(map(&m, &batch), vec![good_row(), good_row(), Outcome::Unclaimed]);
}

#[test]
fn outcomes_do_not_depend_on_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "p.wat", &plugin_wat("unreachable", 1, ""));
    let plugin = || Plugin::load(&engine(None).unwrap(), &path, limits()).unwrap();
    // 41 events in calls of 3, every 7th a trap (its call is retried one by one on fresh instances).
    let mut batch: Vec<Vec<u8>> = docs(41, None);
    for i in (0..41).step_by(7) {
        batch[i] = format!(r#"{{"seq":{i},"event":"E.A","x":"!"}}"#).into_bytes();
    }
    batch[40] = br#"{"seq":40,"event":"OTHER.X"}"#.to_vec();
    let serial = map(&Mapper::new("map", vec![plugin()], 3).with_workers(1), &batch);
    for (i, outcome) in serial.iter().enumerate() {
        match (i % 7, i) {
            (_, 40) => assert_eq!(*outcome, Outcome::Unclaimed),
            (0, _) => assert!(matches!(outcome, Outcome::Failed(r) if r.contains("trapped")), "{i}: {outcome:?}"),
            _ => assert_eq!(*outcome, good_row(), "{i}"),
        }
    }
    for workers in [2, 4] {
        let m = Mapper::new("map", vec![plugin()], 3).with_workers(workers);
        assert_eq!(m.workers(), workers);
        assert_eq!(map(&m, &batch), serial, "{workers} workers");
        assert_eq!(map(&m, &batch), serial, "{workers} workers, instances reused");
    }
}

#[test]
fn a_trap_fails_only_its_event() {
    only_the_poisoned_event_fails("unreachable", "trapped");
}

#[test]
fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    only_the_poisoned_event_fails("(loop $forever (br $forever))", "CPU budget");
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    only_the_poisoned_event_fails("(drop (memory.grow (i32.const 2000)))", "");
    let (m, _dir) = mapper_for("(drop (memory.grow (i32.const 2000)))");
    let Outcome::Failed(reason) = &map(&m, &docs(1, Some(0)))[0] else { panic!("not failed") };
    assert!(reason.contains("memory") || reason.contains("grow"), "{reason}");
}

#[test]
fn invalid_json_fails_only_its_event() {
    only_the_poisoned_event_fails(&answer(4400, 8), "not a results document");
}

#[test]
fn a_value_of_the_wrong_type_fails_only_its_event() {
    only_the_poisoned_event_fails(&answer(4500, 39), "t[0]: id: expected string, got 5");
}

#[test]
fn an_error_result_fails_only_its_event() {
    only_the_poisoned_event_fails(&answer(4600, 45), "cannot map this one");
}

#[test]
fn rows_for_an_undeclared_table_fail_only_their_event() {
    only_the_poisoned_event_fails(&answer(4700, 44), "does not declare");
}

#[test]
fn output_over_the_limit_fails_only_its_event() {
    only_the_poisoned_event_fails(&answer(65536, 0x7fff_0000), "over the");
}

fn load_error(wat: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "broken.wat", wat);
    let err = Plugin::load(&engine(None).unwrap(), &path, limits()).err().expect("must not load");
    let text = err.to_string();
    assert!(text.contains("broken.wat"), "the error names the file: {text}");
    text
}

#[test]
fn a_wrong_abi_version_is_refused_at_load() {
    assert!(load_error(&plugin_wat("unreachable", 2, "")).contains("ABI version 2"));
}

#[test]
fn a_missing_export_is_refused_at_load() {
    let wat = plugin_wat("unreachable", 1, "").replace("(export \"hooklake_transform\")", "");
    assert!(load_error(&wat).contains("does not export `hooklake_transform`"));
}

#[test]
fn wasi_and_unknown_imports_are_refused_at_load() {
    for import in [
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        r#"(import "wasi:cli/environment@0.2.0" "get-environment" (func))"#,
        r#"(import "env" "open" (func (param i32) (result i32)))"#,
    ] {
        let text = load_error(&plugin_wat("unreachable", 1, import));
        assert!(text.contains("no WASI"), "{text}");
    }
    // The one import a plugin may have: `hooklake.log`.
    let dir = tempfile::tempdir().unwrap();
    let log = r#"(import "hooklake" "log" (func (param i32 i32 i32)))"#;
    let path = write(&dir, "logs.wat", &plugin_wat("unreachable", 1, log));
    assert!(Plugin::load(&engine(None).unwrap(), &path, limits()).is_ok());
}

#[test]
fn a_broken_description_is_refused_at_load() {
    let wat = plugin_wat("unreachable", 1, "").replace(&wat_str(r#""table":"t"}]"#), &wat_str(r#""table":"u"}]"#));
    assert!(load_error(&wat).contains("which `tables` does not declare"));
}

#[test]
fn compiled_plugins_are_cached_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "p.wat", &plugin_wat("unreachable", 1, ""));
    let data = dir.path().join("data");
    let engine = engine_for(&data).unwrap();
    Plugin::load(&engine, &path, limits()).unwrap();
    let cached = walk(&data.join(CACHE_DIR));
    assert!(cached > 0, "nothing cached under {}", data.join(CACHE_DIR).display());
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn a_component_importing_wasi_is_refused_at_load() {
    let wat = r#"(component
      (import "wasi:cli/environment@0.2.0" (instance
        (export "get-environment" (func (result (list (tuple string string))))))))"#;
    let text = load_error(wat);
    assert!(text.contains("wasi:cli/environment@0.2.0") && text.contains("no WASI"), "{text}");
}

#[test]
fn a_component_without_the_plugin_world_is_refused_at_load() {
    assert!(load_error("(component)").contains("does not export the plugin world"));
}

#[test]
fn calls_are_cut_by_event_count_and_by_input_bytes() {
    let docs: Vec<Vec<u8>> = [10usize, 10, 50, 10, 200, 10].iter().map(|n| vec![b'x'; *n]).collect();
    let docs: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
    let all: Vec<usize> = (0..docs.len()).collect();
    let sizes = |max_events, max_bytes| {
        super::chunks(&all, &docs, max_events, max_bytes).iter().map(|c| c.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(sizes(64, usize::MAX), vec![vec![0, 1, 2, 3, 4, 5]]);
    assert_eq!(sizes(4, usize::MAX), vec![vec![0, 1, 2, 3], vec![4, 5]]);
    // 70 bytes: [10, 10, 50] fit exactly; the 200-byte event goes alone.
    assert_eq!(sizes(64, 70), vec![vec![0, 1, 2], vec![3], vec![4], vec![5]]);
    assert!(super::chunks(&[], &docs, 4, 70).is_empty());
}
