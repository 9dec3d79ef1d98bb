//! CPU work spread over a few threads, for the blocking parts of a sink (running plugins, building and encoding
//! files). Scoped threads take items in turn from a shared counter, so a slow item does not hold up the others;
//! results come back in the items' order, so the output never depends on scheduling.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The number of cores this process may use (1 when unknown): the default number of workers.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// `f` applied to every item, on up to `workers` threads (the caller's own included); results in item order.
/// With one worker or one item it runs on the calling thread.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return done };
            done.push((i, f(item)));
        }
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(done) => all.extend(done),
                // A worker's panic is the caller's, as if it had run the item itself.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (i, r) in all {
            results[i] = Some(r);
        }
    });
    // Every index below `items.len()` was taken by exactly one worker, and every worker returned.
    results.into_iter().flatten().collect()
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

    #[test]
    fn a_panicking_item_panics_the_caller() {
        let items = [1, 2, 3, 4];
        let caught = std::panic::catch_unwind(|| map(&items, 2, |x| assert_ne!(*x, 3, "boom")));
        assert!(caught.is_err());
    }
}
