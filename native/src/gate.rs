//! Job gates: at most `capacity` of one scanner's segment jobs run at once, while the jobs
//! queued beyond that wait on their own pool threads and start the moment a running one
//! finishes, without a round trip through the main thread (which may be busy or descheduled
//! just then). A scanner opens one gate with its thread count as the capacity, passes the
//! gate's id with every job and closes it when done. See docs/native.md "Jobs per thread".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::appender::lock;
use crate::failure::{Failure, Outcome};

pub struct Gate {
    capacity: usize,
    running: Mutex<usize>,
    freed: Condvar,
}

/// A running job's place in its gate, given back when dropped (also when the job fails or
/// panics).
pub struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        *lock(&self.0.running) -= 1;
        self.0.freed.notify_one();
    }
}

impl Gate {
    /// Waits until fewer than `capacity` jobs hold a pass, then takes one.
    pub fn enter(self: &Arc<Self>) -> Pass {
        let mut running = lock(&self.running);
        while *running >= self.capacity {
            running = self.freed.wait(running).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *running += 1;
        Pass(Arc::clone(self))
    }
}

static GATES: Mutex<BTreeMap<u64, Arc<Gate>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Opens a gate letting `capacity` (1 to 1024) jobs run at once; returns its id.
pub fn open(capacity: u64) -> Outcome<u64> {
    if !(1..=1024).contains(&capacity) {
        return Err(Failure::Invalid(format!("capacity must be from 1 to 1024, got {capacity}")));
    }
    let gate = Arc::new(Gate { capacity: capacity as usize, running: Mutex::new(0), freed: Condvar::new() });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&GATES).insert(id, gate);
    Ok(id)
}

/// The open gate `id`.
pub fn find(id: u64) -> Outcome<Arc<Gate>> {
    lock(&GATES).get(&id).cloned().ok_or_else(|| Failure::Invalid(format!("no open gate {id}")))
}

/// Forgets gate `id`. Jobs already given it keep their reference and finish as usual.
pub fn close(id: u64) -> Outcome<()> {
    lock(&GATES).remove(&id).map(|_| ()).ok_or_else(|| Failure::Invalid(format!("no open gate {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn no_more_than_capacity_jobs_hold_a_pass_and_waiting_jobs_all_run() {
        let id = open(2).unwrap();
        let gate = find(id).unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (gate, inside, most, finished) =
                    (Arc::clone(&gate), Arc::clone(&inside), Arc::clone(&most), Arc::clone(&finished));
                thread::spawn(move || {
                    let _pass = gate.enter();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Stay until a second job is inside too (or every other job is done), so a
                    // gate letting a third through would be seen, on a busy host as well.
                    for _ in 0..5000 {
                        let present = inside.load(Ordering::SeqCst);
                        if present >= 2 || present + finished.load(Ordering::SeqCst) == 6 {
                            break;
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                    thread::sleep(Duration::from_millis(5));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for handle in threads {
            handle.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two jobs ran together, never three");
        assert_eq!(*lock(&gate.running), 0, "every pass was given back");
        close(id).unwrap();
    }

    #[test]
    fn a_pass_is_given_back_when_its_job_panics() {
        let id = open(1).unwrap();
        let gate = find(id).unwrap();
        let panicking = Arc::clone(&gate);
        assert!(thread::spawn(move || {
            let _pass = panicking.enter();
            panic!("deliberate");
        })
        .join()
        .is_err());
        drop(gate.enter());
        close(id).unwrap();
    }

    #[test]
    fn bad_capacities_and_unknown_ids_are_refused() {
        assert!(matches!(open(0), Err(Failure::Invalid(_))));
        assert!(matches!(open(1025), Err(Failure::Invalid(_))));
        let id = open(1).unwrap();
        close(id).unwrap();
        assert!(matches!(find(id), Err(Failure::Invalid(_))));
        assert!(matches!(close(id), Err(Failure::Invalid(_))));
    }
}
