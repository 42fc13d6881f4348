//! Background appender: positional writes of a caller's buffers done by a dedicated thread, at
//! idle CPU priority (SCHED_IDLE) where the kernel allows it. HRL change tracking uses it for
//! its log batches: on 2 cores, the log's writes then fill the time the disk write leaves idle
//! instead of competing with it for a core (see docs/hrl.md "Speed").
//!
//! No copy is made: a job is (address, length, position) in memory the caller lends until the
//! job is finished, which `finished`, `wait`, `drain` and `close` tell. (The caller is the
//! HRL writer, lending batches of a WebAssembly.Memory that never grows, so never moves.) At
//! most `limit` jobs are unfinished at once; beyond that `submit` returns 0 and the caller
//! writes the buffer itself. Nothing ever waits on the idle thread for long: `wait` and `drain`
//! write queued jobs on the calling thread and wait only for the one job the idle thread may
//! be in the middle of. The first failed write is kept: later calls report it, and queued jobs
//! are dropped (finished, unwritten: the log is unusable). Jobs are independent positional
//! writes; their order does not matter.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Of those, written by a thread calling wait or drain.
    pub by_drain: u64,
    /// Submits refused because `limit` jobs were unfinished (the caller wrote those itself).
    pub refused: u64,
    /// 1 when the background thread runs under SCHED_IDLE.
    pub idle: u64,
}

/// A write of the caller's memory [address, address+length) at `position`.
struct Job {
    token: u64,
    position: u64,
    address: usize,
    length: usize,
}

struct State {
    queue: VecDeque<Job>,
    /// Tokens of the jobs not finished yet (queued or being written).
    unfinished: BTreeSet<u64>,
    next_token: u64,
    stop: bool,
    failure: Option<Failure>,
    stats: Stats,
}

struct Shared {
    fd: c_int,
    limit: usize,
    state: Mutex<State>,
    /// Signals the background thread: a job was queued, or stop.
    work: Condvar,
    /// Signals wait/drain callers: the background thread finished a job.
    idle: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static APPENDERS: Mutex<BTreeMap<u64, Arc<Shared>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A poisoned lock only means a panic elsewhere while holding it; the state stays consistent
/// because every critical section below is panic-free bookkeeping.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn find(id: u64) -> Outcome<Arc<Shared>> {
    lock(&APPENDERS).get(&id).cloned().ok_or_else(|| Failure::Invalid(format!("no open appender {id}")))
}

/// Starts an appender writing to `fd` (which the caller keeps open until `close` returns) with
/// at most `limit` unfinished jobs. `idle` asks for SCHED_IDLE. Returns its id.
pub fn open(fd: c_int, limit: u64, idle: bool) -> Outcome<u64> {
    if !(1..=64).contains(&limit) {
        return Err(Failure::Invalid(format!("limit must be from 1 to 64, got {limit}")));
    }
    let state = State {
        queue: VecDeque::new(),
        unfinished: BTreeSet::new(),
        next_token: 1,
        stop: false,
        failure: None,
        stats: Stats::default(),
    };
    let shared = Arc::new(Shared {
        fd,
        limit: limit as usize,
        state: Mutex::new(state),
        work: Condvar::new(),
        idle: Condvar::new(),
        thread: Mutex::new(None),
    });
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

/// Queues the write of [address, address+length) at `position` and returns its token (≥ 1),
/// or 0 when `limit` jobs are unfinished (nothing queued). Reports the first failed write.
///
/// # Safety
/// The memory must stay allocated and unchanged until the job is finished (`finished`,
/// `wait`, `drain` or `close` says so).
pub unsafe fn submit(id: u64, address: usize, length: usize, position: u64) -> Outcome<u64> {
    let shared = find(id)?;
    let mut state = lock(&shared.state);
    if let Some(failure) = &state.failure {
        return Err(failure.clone());
    }
    if state.unfinished.len() >= shared.limit {
        state.stats.refused += 1;
        return Ok(0);
    }
    let token = state.next_token;
    state.next_token += 1;
    state.unfinished.insert(token);
    state.queue.push_back(Job { token, position, address, length });
    state.stats.queued += 1;
    drop(state);
    shared.work.notify_one();
    Ok(token)
}

/// Whether job `token` is finished (written, or dropped after a failure). Never blocks.
pub fn finished(id: u64, token: u64) -> Outcome<bool> {
    let shared = find(id)?;
    let state = lock(&shared.state);
    Ok(!state.unfinished.contains(&token))
}

/// Returns once job `token` is finished: writes it on the calling thread if it is still
/// queued, else waits for the background thread to finish it. Reports the first failure.
pub fn wait(id: u64, token: u64) -> Outcome<()> {
    settle(&*find(id)?, Some(token))
}

/// Returns once every job is finished: writes the queued ones on the calling thread and waits
/// for the background thread's current one. Reports the first failure.
pub fn drain(id: u64) -> Outcome<()> {
    settle(&*find(id)?, None)
}

/// wait (one token) and drain (None): help with queued jobs, else wait for the thread, until done.
fn settle(shared: &Shared, token: Option<u64>) -> Outcome<()> {
    let mut state = lock(&shared.state);
    loop {
        let done = match token {
            Some(token) => !state.unfinished.contains(&token),
            None => state.unfinished.is_empty(),
        };
        if done {
            return state.failure.clone().map_or(Ok(()), Err);
        }
        let queued = match token {
            Some(token) => state.queue.iter().position(|job| job.token == token).and_then(|index| state.queue.remove(index)),
            None => state.queue.pop_front(),
        };
        // Not queued yet unfinished: the background thread is writing it (after a failure, the
        // queue is empty and only that job can be left).
        let Some(job) = queued else {
            state = shared.idle.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            continue;
        };
        drop(state);
        let result = write_job(shared.fd, &job);
        state = lock(&shared.state);
        finish(&mut state, &job, result, false);
    }
}

/// Drains, stops and joins the background thread, and forgets the appender (even when the
/// drain fails: the failure is returned after the thread is gone). Returns the counters.
pub fn close(id: u64) -> Outcome<Stats> {
    let shared = find(id)?;
    let drained = settle(&shared, None);
    lock(&shared.state).stop = true;
    shared.work.notify_all();
    if let Some(handle) = lock(&shared.thread).take() {
        let _ = handle.join();
    }
    lock(&APPENDERS).remove(&id);
    let stats = lock(&shared.state).stats;
    drained.map(|_| stats)
}

/// Records a finished job; a failure is kept and drops (finishes) the queued jobs.
fn finish(state: &mut State, job: &Job, result: Outcome<()>, by_thread: bool) {
    state.unfinished.remove(&job.token);
    match result {
        Ok(()) if by_thread => state.stats.by_thread += 1,
        Ok(()) => state.stats.by_drain += 1,
        Err(failure) => {
            state.failure.get_or_insert(failure);
            while let Some(dropped) = state.queue.pop_front() {
                state.unfinished.remove(&dropped.token);
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
            drop(state);
            let result = write_job(shared.fd, &job);
            state = lock(&shared.state);
            finish(&mut state, &job, result, true);
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
    // SAFETY: submit's contract keeps [address, address+length) allocated and unchanged until
    // this job is finished, which happens only after this returns.
    let data = if job.length == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(job.address as *const u8, job.length) } };
    catch_unwind(AssertUnwindSafe(|| pwrite_all(fd, data, job.position))).unwrap_or_else(|payload| Err(Failure::from_panic(payload)))
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
        let id = open(file.as_raw_fd(), 3, true).unwrap();
        // One buffer per job, kept alive (and unchanged) until the drain.
        let buffers: Vec<Vec<u8>> = (0..64u64).map(|round| (0..1000).map(|i| (i as u64 * 7 + round) as u8).collect()).collect();
        let mut expected = vec![0u8; 64 * 1000];
        let (mut written_here, mut tokens) = (0, Vec::new());
        for (round, data) in buffers.iter().enumerate() {
            let position = ((round as u64 * 37) % 64) * 1000;
            expected[position as usize..position as usize + 1000].copy_from_slice(data);
            let token = unsafe { submit(id, data.as_ptr() as usize, data.len(), position) }.unwrap();
            if token == 0 {
                pwrite_all(file.as_raw_fd(), data, position).unwrap();
                written_here += 1;
            } else {
                tokens.push(token);
            }
            if round % 5 == 0 {
                if let Some(&first) = tokens.first() {
                    wait(id, first).unwrap();
                    assert!(finished(id, first).unwrap());
                    tokens.remove(0);
                }
            }
        }
        drain(id).unwrap();
        assert!(tokens.iter().all(|&token| finished(id, token).unwrap()));
        let stats = close(id).unwrap();
        assert_eq!(stats.queued + written_here, 64);
        assert_eq!(stats.by_thread + stats.by_drain, stats.queued);
        assert_eq!(stats.refused, written_here);
        let mut content = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut content).unwrap();
        assert_eq!(content, expected);
        std::fs::remove_file(path).unwrap();
        assert!(finished(id, 1).is_err(), "a closed appender is forgotten");
    }

    #[test]
    fn the_first_failure_is_reported_and_sticks() {
        let (path, file) = temp_file("failure");
        drop(file);
        let read_only = File::open(&path).unwrap();
        let id = open(read_only.as_raw_fd(), 2, false).unwrap();
        let data = [1u8, 2, 3];
        let token = unsafe { submit(id, data.as_ptr() as usize, 3, 0) }.unwrap();
        assert!(token > 0);
        assert_eq!(wait(id, token).unwrap_err().code(), "EBADF");
        assert!(finished(id, token).unwrap());
        assert_eq!(drain(id).unwrap_err().code(), "EBADF");
        assert_eq!(unsafe { submit(id, data.as_ptr() as usize, 1, 0) }.unwrap_err().code(), "EBADF");
        assert_eq!(close(id).unwrap_err().code(), "EBADF");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(open(0, 0, false).is_err());
        assert!(open(0, 65, false).is_err());
        assert!(wait(u64::MAX, 1).is_err());
    }
}
