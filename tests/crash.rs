//! `kill -9` at a random moment under concurrent load loses no acknowledged delivery and stores none twice.
//! Seed with HOOKLAKE_CRASH_SEED to replay a run; HOOKLAKE_CRASH_CYCLES and HOOKLAKE_CRASH_DELIVERIES scale it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Hooklake, envelope, signed_request, try_raw_request};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: enough randomness for kill timing, reproducible from the seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_delivery() {
    let seed =
        env_or("HOOKLAKE_CRASH_SEED", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64) | 1;
    let cycles = env_or("HOOKLAKE_CRASH_CYCLES", 3);
    let per_cycle = env_or("HOOKLAKE_CRASH_DELIVERIES", 3000) as usize;
    eprintln!("crash test seed {seed} (HOOKLAKE_CRASH_SEED={seed} replays it)");
    let mut rng = seed;

    let mut h = Hooklake::start();
    let dir = h.dir.clone();
    // Killed instances own the temp dir: keep them until the end.
    let mut killed = Vec::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut sent_ids: Vec<String> = Vec::new();
    for cycle in 0..cycles {
        // New ids, plus every earlier id resent (as InsightIQ's retries would).
        let mut ids: Vec<String> = (0..per_cycle).map(|i| format!("c{cycle}-{i:05}")).collect();
        ids.extend(sent_ids.iter().take(per_cycle / 4).cloned());
        sent_ids.extend(ids.iter().take(per_cycle).cloned());
        let ids = Arc::new(ids);
        let next_index = Arc::new(AtomicUsize::new(0));
        let dead = Arc::new(AtomicBool::new(false));
        let got_200 = Arc::new(Mutex::new(Vec::new()));
        let addr = h.addr;
        let senders: Vec<_> = (0..32)
            .map(|_| {
                let (ids, next_index, dead, got_200) =
                    (Arc::clone(&ids), Arc::clone(&next_index), Arc::clone(&dead), Arc::clone(&got_200));
                std::thread::spawn(move || {
                    while !dead.load(Ordering::Relaxed) {
                        let i = next_index.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = ids.get(i) else { break };
                        let body = envelope(id);
                        let req = signed_request(body.as_bytes());
                        match try_raw_request(addr, &req) {
                            Some((200, _)) => got_200.lock().unwrap().push(id.clone()),
                            // Killed mid-request, or gone: stop sending (the next cycle resends).
                            Some((0, _)) | None => break,
                            Some((status, answer)) => panic!("unexpected {status} for {id}: {answer}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + next(&mut rng) % 400));
        let h_killed = h.kill9();
        dead.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().unwrap();
        }
        let n = got_200.lock().unwrap().len();
        eprintln!("cycle {cycle}: killed after {n} acknowledgements, {} attempted", next_index.load(Ordering::Relaxed));
        acked.extend(got_200.lock().unwrap().iter().cloned());
        killed.push(h_killed);
        h = Hooklake::spawn_in(&dir);
    }
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let rows = h.dump();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *count.entry(r["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let lost: Vec<_> = acked.iter().filter(|id| !count.contains_key(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not in the journal (seed {seed}): {lost:?}");
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers must strictly increase");
    assert!(!acked.is_empty(), "the test must have acknowledged something to prove anything");
    eprintln!("{} acknowledged ids, {} stored, all present once", acked.len(), rows.len());

    // Finally every id is resent to the restarted instance: all are acknowledged, each stored exactly once.
    let h = Hooklake::spawn_in(&dir);
    for id in sent_ids.iter() {
        let body = envelope(id);
        assert_eq!(h.post(body.as_bytes()).0, 200);
    }
    let rows = h.stop_and_dump();
    let stored: BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), stored.len(), "no id stored twice");
    assert_eq!(stored.len(), sent_ids.iter().collect::<BTreeSet<_>>().len());
    drop(killed);
}
