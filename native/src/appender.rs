//! Background appender: positional writes of a caller's buffers done by a dedicated thread, at
//! idle CPU priority (SCHED_IDLE) where the kernel allows it. HRL change tracking uses it for
//! its log batches: on 2 cores, the log's writes then fill the time the disk write leaves idle
//! instead of competing with it for a core (see docs/hrl.md "Speed").
//!
//! The caller's bytes are copied into one of a fixed number of slots during `submit`, so the
//! caller may reuse its memory at once. When every slot is queued or being written, `submit`
//! returns false and the caller writes that buffer itself; nothing ever waits on the idle
//! thread except `drain`, which first writes the queued jobs on the calling thread and then
//! waits for the one job the idle thread may be in the middle of. The first failed write is
//! kept: later submits and drains report it, and queued jobs are dropped (the log is unusable).
//! Jobs are independent positional writes; their order does not matter.

use std::collections::{BTreeMap, VecDeque};
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::failure::{Failure, Outcome};
use crate::sys;

/// Counters returned by `close`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Buffers accepted by submit.
    pub queued: u64,
    /// Of those, written by the background thread.
    pub by_thread: u64,
    /// Of those, written by a thread calling drain.
    pub by_drain: u64,
    /// Submits refused because every slot was busy (the caller wrote those itself).
    pub refused: u64,
    /// 1 when the background thread runs under SCHED_IDLE.
    pub idle: u64,
}

struct Job {
    position: u64,
    length: usize,
    slot: Vec<u8>,
}

struct State {
    queue: VecDeque<Job>,
    free: Vec<Vec<u8>>,
    /// The background thread is writing a job.
    busy: bool,
    stop: bool,
    failure: Option<Failure>,
    stats: Stats,
}

struct Shared {
    fd: c_int,
    slot_bytes: usize,
    state: Mutex<State>,
    /// Signals the background thread: a job was queued, or stop.
    work: Condvar,
    /// Signals drainers: the background thread finished a job.
    idle: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static APPENDERS: Mutex<BTreeMap<u64, Arc<Shared>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A poisoned lock only means a panic elsewhere while holding it; the state stays consistent
/// because every critical section below is panic-free bookkeeping.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn find(id: u64) -> Outcome<Arc<Shared>> {
    lock(&APPENDERS).get(&id).cloned().ok_or_else(|| Failure::Invalid(format!("no open appender {id}")))
}

/// Starts an appender writing to `fd` (which the caller keeps open until `close` returns) with
/// `slots` buffers of `slot_bytes`. `idle` asks for SCHED_IDLE. Returns its id.
pub fn open(fd: c_int, slots: u64, slot_bytes: u64, idle: bool) -> Outcome<u64> {
    if !(1..=64).contains(&slots) {
        return Err(Failure::Invalid(format!("slots must be from 1 to 64, got {slots}")));
    }
    if !(1..=(64 << 20)).contains(&slot_bytes) {
        return Err(Failure::Invalid(format!("slotBytes must be from 1 to 64 MiB, got {slot_bytes}")));
    }
    let state = State { queue: VecDeque::new(), free: Vec::new(), busy: false, stop: false, failure: None, stats: Stats::default() };
    let shared = Arc::new(Shared {
        fd,
        slot_bytes: slot_bytes as usize,
        state: Mutex::new(state),
        work: Condvar::new(),
        idle: Condvar::new(),
        thread: Mutex::new(None),
    });
    // Slots grow on first use (a log that sees few writes never fills them all).
    lock(&shared.state).free.extend((0..slots).map(|_| Vec::new()));
    let background = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("vhdsync-log".into())
        .spawn(move || run(&background, idle))
        .map_err(|error| Failure::Os { errno: error.raw_os_error().unwrap_or(sys::EAGAIN), syscall: "pthread_create" })?;
    *lock(&shared.thread) = Some(handle);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&APPENDERS).insert(id, shared);
    Ok(id)
}

/// Copies `data` into a free slot and queues its write at `position`. Returns false, copying
/// nothing, when no slot is free. Reports the first failed background write.
pub fn submit(id: u64, data: &[u8], position: u64) -> Outcome<bool> {
    let shared = find(id)?;
    if data.len() > shared.slot_bytes {
        return Err(Failure::Invalid(format!("{} bytes do not fit a slot of {}", data.len(), shared.slot_bytes)));
    }
    let mut state = lock(&shared.state);
    if let Some(failure) = &state.failure {
        return Err(failure.clone());
    }
    let Some(mut slot) = state.free.pop() else {
        state.stats.refused += 1;
        return Ok(false);
    };
    // The copy happens under the lock; it is a memcpy of at most slot_bytes, and the
    // background thread only takes the lock between writes.
    slot.clear();
    slot.extend_from_slice(data);
    state.queue.push_back(Job { position, length: data.len(), slot });
    state.stats.queued += 1;
    drop(state);
    shared.work.notify_one();
    Ok(true)
}

/// Writes every queued job on the calling thread, waits for the background thread's current
/// job, and reports the first failure, if any.
pub fn drain(id: u64) -> Outcome<()> {
    drain_shared(&*find(id)?)
}

fn drain_shared(shared: &Shared) -> Outcome<()> {
    let mut state = lock(&shared.state);
    loop {
        if let Some(failure) = &state.failure {
            return Err(failure.clone());
        }
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            let result = write_job(shared.fd, &job);
            state = lock(&shared.state);
            finish(&mut state, job, result, false);
            continue;
        }
        if !state.busy {
            return Ok(());
        }
        state = shared.idle.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

/// Drains, stops and joins the background thread, and forgets the appender (even when the
/// drain fails: the failure is returned after the thread is gone). Returns the counters.
pub fn close(id: u64) -> Outcome<Stats> {
    let shared = find(id)?;
    let drained = drain_shared(&shared);
    lock(&shared.state).stop = true;
    shared.work.notify_all();
    if let Some(handle) = lock(&shared.thread).take() {
        let _ = handle.join();
    }
    lock(&APPENDERS).remove(&id);
    let stats = lock(&shared.state).stats;
    drained.map(|_| stats)
}

/// Records a finished job: its slot returns to the free list; a failure is kept and drops the
/// queued jobs (their slots return too).
fn finish(state: &mut State, job: Job, result: Outcome<()>, by_thread: bool) {
    state.free.push(job.slot);
    match result {
        Ok(()) if by_thread => state.stats.by_thread += 1,
        Ok(()) => state.stats.by_drain += 1,
        Err(failure) => {
            state.failure.get_or_insert(failure);
            while let Some(dropped) = state.queue.pop_front() {
                state.free.push(dropped.slot);
            }
        }
    }
}

fn run(shared: &Shared, idle: bool) {
    if idle {
        let param = sys::SchedParam { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a live local.
        if unsafe { sys::sched_setscheduler(0, sys::SCHED_IDLE, &param) } == 0 {
            lock(&shared.state).stats.idle = 1;
        }
    }
    let mut state = lock(&shared.state);
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.busy = true;
            drop(state);
            let result = write_job(shared.fd, &job);
            state = lock(&shared.state);
            state.busy = false;
            finish(&mut state, job, result, true);
            shared.idle.notify_all();
            continue;
        }
        if state.stop {
            return;
        }
        state = shared.work.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

/// pwrite of the whole job, retrying EINTR and short writes; a panic becomes a Failure.
fn write_job(fd: c_int, job: &Job) -> Outcome<()> {
    catch_unwind(AssertUnwindSafe(|| pwrite_all(fd, &job.slot[..job.length], job.position)))
        .unwrap_or_else(|payload| Err(Failure::from_panic(payload)))
}

pub fn pwrite_all(fd: c_int, mut data: &[u8], mut position: u64) -> Outcome<()> {
    while !data.is_empty() {
        let chunk = data.len().min(1 << 30);
        // SAFETY: the pointer and length describe the live slice `data`.
        let written = unsafe { sys::pwrite(fd, data.as_ptr().cast(), chunk, position as i64) };
        if written < 0 {
            let errno = sys::errno();
            if errno == sys::EINTR {
                continue;
            }
            return Err(Failure::Os { errno, syscall: "pwrite" });
        }
        if written == 0 {
            return Err(Failure::Os { errno: sys::EIO, syscall: "pwrite" });
        }
        data = &data[written as usize..];
        position += written as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("vhdsync-appender-{}-{name}", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn writes_every_job_at_its_position() {
        let (path, file) = temp_file("positions");
        let id = open(file.as_raw_fd(), 3, 4096, true).unwrap();
        let mut expected = vec![0u8; 64 * 1000];
        let mut written_here = 0;
        // Out of order positions, more jobs than slots: some are refused and written here.
        for round in 0..64u64 {
            let position = ((round * 37) % 64) * 1000;
            let data: Vec<u8> = (0..1000).map(|i| (i as u64 * 7 + round) as u8).collect();
            expected[position as usize..position as usize + 1000].copy_from_slice(&data);
            if !submit(id, &data, position).unwrap() {
                pwrite_all(file.as_raw_fd(), &data, position).unwrap();
                written_here += 1;
            }
        }
        drain(id).unwrap();
        let stats = close(id).unwrap();
        assert_eq!(stats.queued + written_here, 64);
        assert_eq!(stats.by_thread + stats.by_drain, stats.queued);
        assert_eq!(stats.refused, written_here);
        let mut content = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut content).unwrap();
        assert_eq!(content, expected);
        std::fs::remove_file(path).unwrap();
        assert!(submit(id, &[1], 0).is_err(), "a closed appender is forgotten");
    }

    #[test]
    fn the_first_failure_is_reported_and_sticks() {
        let (path, file) = temp_file("failure");
        drop(file);
        let read_only = File::open(&path).unwrap();
        let id = open(read_only.as_raw_fd(), 2, 16, false).unwrap();
        assert!(submit(id, &[1, 2, 3], 0).unwrap());
        let failure = drain(id).unwrap_err();
        assert_eq!(failure.code(), "EBADF");
        assert_eq!(submit(id, &[1], 0).unwrap_err().code(), "EBADF");
        assert_eq!(close(id).unwrap_err().code(), "EBADF");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(open(0, 0, 16, false).is_err());
        assert!(open(0, 2, 0, false).is_err());
        let (path, file) = temp_file("args");
        let id = open(file.as_raw_fd(), 1, 16, false).unwrap();
        assert_eq!(submit(id, &[0; 17], 0).unwrap_err().code(), "VHDSYNC_INVALID_ARGUMENT");
        close(id).unwrap();
        std::fs::remove_file(path).unwrap();
    }
}
