//! Sync and async (promise) forms of every operation. An operation is a `parse` function
//! that validates the JS arguments on the main thread and returns a `Job`; the sync form runs
//! the job at once, the async form runs it on a libuv worker thread (napi_create_async_work)
//! and settles a promise on the main thread. Panics are caught on both threads.

use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::args::Args;
use crate::failure::{Failure, Outcome};
use crate::js::{self, check, guard, Output};
use crate::napi::*;

/// Work that may block (system calls only, no N-API): runs on any thread.
pub type Job = Box<dyn FnOnce() -> Outcome<Output> + Send>;

/// Validates the arguments of a call and prepares its job.
pub type Parse = fn(&Args) -> Outcome<Job>;

/// Runs the job now and returns its value (or throws).
pub fn run_sync(env: napi_env, info: napi_callback_info, parse: Parse) -> napi_value {
    guard(env, || {
        let args = Args::read(env, info)?;
        let output = parse(&args)?()?;
        js::output_value(env, output)
    })
}

struct Task {
    job: Option<Job>,
    result: Option<Outcome<Output>>,
    deferred: napi_deferred,
    work: napi_async_work,
}

/// Returns a promise settled with the job's value, run off the main thread. Invalid arguments
/// reject the promise (no work is queued).
pub fn run_async(env: napi_env, info: napi_callback_info, parse: Parse, name: &'static str) -> napi_value {
    guard(env, || {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        check(unsafe { napi_create_promise(env, &mut deferred, &mut promise) }, "napi_create_promise")?;
        let queued = catch_unwind(AssertUnwindSafe(|| {
            let job = parse(&Args::read(env, info)?)?;
            queue(env, job, deferred, name)
        }))
        .unwrap_or_else(|payload| Err(Failure::from_panic(payload)));
        if let Err(failure) = queued {
            reject(env, deferred, &failure);
        }
        Ok(promise)
    })
}

fn queue(env: napi_env, job: Job, deferred: napi_deferred, name: &'static str) -> Outcome<()> {
    let resource_name = js::string(env, name)?;
    let task = Box::into_raw(Box::new(Task { job: Some(job), result: None, deferred, work: ptr::null_mut() }));
    let mut work = ptr::null_mut();
    let status =
        unsafe { napi_create_async_work(env, ptr::null_mut(), resource_name, execute, complete, task.cast(), &mut work) };
    if status != NAPI_OK {
        drop(unsafe { Box::from_raw(task) });
        return Err(Failure::Napi { status, what: "napi_create_async_work" });
    }
    unsafe { (*task).work = work };
    let status = unsafe { napi_queue_async_work(env, work) };
    if status != NAPI_OK {
        unsafe { napi_delete_async_work(env, work) };
        drop(unsafe { Box::from_raw(task) });
        return Err(Failure::Napi { status, what: "napi_queue_async_work" });
    }
    Ok(())
}

/// Worker thread: run the job, keep its result. No N-API calls allowed here.
extern "C" fn execute(_env: napi_env, data: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Task leaked in `queue`, owned by this work until `complete`.
        let task = unsafe { &mut *(data as *mut Task) };
        if let Some(job) = task.job.take() {
            let result = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|payload| Err(Failure::from_panic(payload)));
            task.result = Some(result);
        }
    }));
}

/// Main thread: settle the promise and free the task.
extern "C" fn complete(env: napi_env, status: napi_status, data: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Task leaked in `queue`; this is its last use.
        let task = unsafe { Box::from_raw(data as *mut Task) };
        let result = match (status, task.result) {
            (NAPI_CANCELLED, _) => Err(Failure::Napi { status, what: "async work (cancelled)" }),
            (_, Some(result)) => result,
            (_, None) => Err(Failure::Napi { status, what: "async work completion" }),
        };
        match result.and_then(|output| js::output_value(env, output)) {
            Ok(value) => {
                unsafe { napi_resolve_deferred(env, task.deferred, value) };
            }
            Err(failure) => reject(env, task.deferred, &failure),
        }
        unsafe { napi_delete_async_work(env, task.work) };
    }));
}

fn reject(env: napi_env, deferred: napi_deferred, failure: &Failure) {
    let error = js::error_value(env, failure).or_else(|_| js::undefined(env));
    if let Ok(error) = error {
        unsafe { napi_reject_deferred(env, deferred, error) };
    }
}
