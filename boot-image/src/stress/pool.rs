//! Work on several QEMUs at once: `jobs` threads take items in order, and the caller sees
//! each finished item on its own thread (for progress). Shared by stress runs and the demo.

use std::sync::Mutex;

use crate::Error;

/// Runs `work` on every item with `jobs` threads; calls `on_done` on the calling thread after
/// each item finishes; returns the results in the order they finished. `keep_going` is asked
/// before each item is started: once it says no, no new item starts (those under way
/// finish). An `Err` from `work` (an environment failure, Ctrl-C: no verdict on the item)
/// starts no further item and is returned after the items under way finish.
pub fn parallel<T: Send, R: Send>(
    jobs: usize,
    items: Vec<T>,
    keep_going: &(dyn Fn() -> bool + Sync),
    work: &(dyn Fn(T) -> Result<R, Error> + Sync),
    on_done: &mut dyn FnMut(&R),
) -> Result<Vec<R>, Error> {
    let queue = Mutex::new(items.into_iter());
    let mut done = Vec::new();
    let mut first_err = None;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..jobs.max(1) {
            let (tx, queue) = (tx.clone(), &queue);
            s.spawn(move || {
                loop {
                    if !keep_going() {
                        return;
                    }
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some(item) = next else { return };
                    let r = work(item);
                    let stop = r.is_err();
                    if tx.send(r).is_err() || stop {
                        if stop {
                            // Leave the rest: the environment is broken for every item.
                            queue.lock().map(|mut q| q.by_ref().for_each(drop)).ok();
                        }
                        return;
                    }
                }
            });
        }
        drop(tx);
        for r in rx {
            match r {
                Ok(r) => {
                    on_done(&r);
                    done.push(r);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_and_errors_stop_new_items() {
        let mut seen = 0;
        let mut out = parallel(
            3,
            (0..20).collect(),
            &|| true,
            &|i: u32| Ok(i * 2),
            &mut |_| seen += 1,
        )
        .unwrap();
        out.sort();
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(seen, 20);
        let started = std::sync::atomic::AtomicU32::new(0);
        let r = parallel(
            1,
            (0..10).collect(),
            &|| true,
            &|i: u32| {
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i == 2 {
                    Err(Error::env("no QEMU"))
                } else {
                    Ok(i)
                }
            },
            &mut |_| {},
        );
        assert!(r.is_err());
        assert_eq!(started.into_inner(), 3, "nothing starts after the error");
        let none = parallel(2, (0..5).collect(), &|| false, &|i: u32| Ok(i), &mut |_| {});
        assert_eq!(none.unwrap(), Vec::<u32>::new());
    }
}
