//! CPU work spread over a few threads, for the blocking parts of a sink (running plugins, building and encoding
//! files). Scoped threads take items in turn from a shared counter, so a slow item does not hold up the others;
//! results come back in the items' order, so the output never depends on scheduling.
//!
//! The threads run at a lower priority (nice 10 on Linux): when the cores are busy, the kernel runs the threads
//! answering webhooks first, so a sink writing a large roll does not add its duration to acknowledgements.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The niceness of the threads doing background work.
const BACKGROUND_NICE: i32 = 10;

/// The number of cores this process may use (1 when unknown): the default number of workers.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// `f` applied to every item, on up to `workers` background threads (the caller waits); results in item order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let workers = workers.clamp(1, items.len());
    let next = AtomicUsize::new(0);
    let work = || {
        lower_priority();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return done };
            done.push((i, f(item)));
        }
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        for t in threads {
            match t.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                // A worker's panic is the caller's, as if it had run the item itself.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    // Every index below `items.len()` was taken by exactly one worker, and every worker returned.
    results.into_iter().flatten().collect()
}

/// Lowers the calling thread's priority (Linux: per-thread niceness); elsewhere a no-op. Best effort: a failure
/// only leaves the thread at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        // Only ever lower it: a process already started under a higher niceness keeps it.
        if rustix::process::getpriority_process(me).is_ok_and(|nice| nice < BACKGROUND_NICE) {
            let _ = rustix::process::setpriority_process(me, BACKGROUND_NICE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_workers() {
        let items: Vec<u64> = (0..1000).collect();
        for workers in [0, 1, 2, 3, 8, 2000] {
            let out = map(&items, workers, |x| {
                if x % 7 == 0 {
                    std::thread::yield_now();
                }
                x * x
            });
            assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>(), "workers = {workers}");
        }
        assert!(map(&[] as &[u8], 4, |x| *x).is_empty());
    }

    #[test]
    fn more_than_one_thread_does_the_work() {
        let items: Vec<u32> = (0..64).collect();
        let ids = map(&items, 2, |_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            std::thread::current().id()
        });
        let distinct: std::collections::BTreeSet<_> = ids.iter().map(|id| format!("{id:?}")).collect();
        assert_eq!(distinct.len(), 2, "two workers share 64 items of 2 ms");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn workers_run_at_background_priority_and_the_caller_keeps_its_own() {
        let before = rustix::process::getpriority_process(None).unwrap_or_default();
        let nice = map(&[(); 3], 2, |()| rustix::process::getpriority_process(Some(rustix::thread::gettid())));
        for n in nice {
            assert_eq!(n.ok(), Some(BACKGROUND_NICE.max(before)));
        }
        assert_eq!(rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok(), Some(before));
    }

    #[test]
    fn a_panicking_item_panics_the_caller() {
        let items = [1, 2, 3, 4];
        let caught = std::panic::catch_unwind(|| map(&items, 2, |x| assert_ne!(*x, 3, "boom")));
        assert!(caught.is_err());
    }
}
