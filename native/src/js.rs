//! Building JS values and errors through N-API, and `guard`, which wraps every callback body
//! so that neither a Rust panic nor a failure ever crosses the FFI boundary: both become a
//! thrown JS Error with `code` set.

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::failure::{Failure, Outcome};
use crate::napi::*;
use crate::ops::{DeviceInfo, Extent};

/// What an operation hands back to JS.
pub enum Output {
    Undefined,
    Number(f64),
    Extents(Vec<Extent>),
    /// A fixed name, e.g. the method extents come from.
    Text(&'static str),
    Device(DeviceInfo),
    /// A plain object of named numbers.
    Numbers(Vec<(&'static str, f64)>),
}

/// Turns an N-API status into an Outcome.
pub fn check(status: napi_status, what: &'static str) -> Outcome<()> {
    if status == NAPI_OK {
        Ok(())
    } else {
        Err(Failure::Napi { status, what })
    }
}

/// Converts a Rust string to a C string, replacing interior NULs.
pub fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

pub fn undefined(env: napi_env) -> Outcome<napi_value> {
    let mut value = ptr::null_mut();
    check(unsafe { napi_get_undefined(env, &mut value) }, "napi_get_undefined")?;
    Ok(value)
}

pub fn number(env: napi_env, number: f64) -> Outcome<napi_value> {
    let mut value = ptr::null_mut();
    check(unsafe { napi_create_double(env, number, &mut value) }, "napi_create_double")?;
    Ok(value)
}

pub fn string(env: napi_env, text: &str) -> Outcome<napi_value> {
    let mut value = ptr::null_mut();
    let status = unsafe { napi_create_string_utf8(env, text.as_ptr().cast(), text.len(), &mut value) };
    check(status, "napi_create_string_utf8")?;
    Ok(value)
}

/// A plain object with numeric properties, e.g. {offset, length}.
pub fn object_of_numbers(env: napi_env, fields: &[(&'static str, f64)]) -> Outcome<napi_value> {
    let mut object = ptr::null_mut();
    check(unsafe { napi_create_object(env, &mut object) }, "napi_create_object")?;
    for (name, field_value) in fields {
        set_property(env, object, name, number(env, *field_value)?)?;
    }
    Ok(object)
}

pub fn set_property(env: napi_env, object: napi_value, name: &str, value: napi_value) -> Outcome<()> {
    let name = c_string(name);
    check(unsafe { napi_set_named_property(env, object, name.as_ptr(), value) }, "napi_set_named_property")
}

/// A Float64Array of (offset, length) pairs, copied in one go. It replaced an array of
/// {offset, length} objects, which took ~60 ms to build for 262,144 extents on the main thread
/// (the async form's completion runs there) and as long again to collect.
fn extent_pairs(env: napi_env, extents: &[Extent]) -> Outcome<napi_value> {
    let count = extents.len() * 2;
    let mut data = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    check(unsafe { napi_create_arraybuffer(env, count * 8, &mut data, &mut buffer) }, "napi_create_arraybuffer")?;
    if count > 0 {
        // SAFETY: a fresh buffer of count f64s (V8 aligns array buffers to 8 bytes at least).
        let pairs = unsafe { std::slice::from_raw_parts_mut(data as *mut f64, count) };
        for (pair, extent) in pairs.chunks_exact_mut(2).zip(extents) {
            pair[0] = extent.offset as f64;
            pair[1] = extent.length as f64;
        }
    }
    let mut array = ptr::null_mut();
    check(unsafe { napi_create_typedarray(env, NAPI_FLOAT64_ARRAY, count, buffer, 0, &mut array) }, "napi_create_typedarray")?;
    Ok(array)
}

/// The JS value of an operation's output.
pub fn output_value(env: napi_env, output: Output) -> Outcome<napi_value> {
    match output {
        Output::Undefined => undefined(env),
        Output::Number(value) => number(env, value),
        Output::Extents(extents) => extent_pairs(env, &extents),
        Output::Text(text) => string(env, text),
        Output::Numbers(fields) => object_of_numbers(env, &fields),
        Output::Device(device) => object_of_numbers(
            env,
            &[
                ("sizeBytes", device.size_bytes as f64),
                ("logicalSectorSize", device.logical_sector_size as f64),
                ("physicalSectorSize", device.physical_sector_size as f64),
            ],
        ),
    }
}

/// A JS Error for `failure`: message, `code`, and for system calls `errno` and `syscall`.
pub fn error_value(env: napi_env, failure: &Failure) -> Outcome<napi_value> {
    let code = string(env, failure.code())?;
    let message = string(env, &failure.message())?;
    let mut error = ptr::null_mut();
    check(unsafe { napi_create_error(env, code, message, &mut error) }, "napi_create_error")?;
    if let Failure::Os { errno, syscall } = failure {
        set_property(env, error, "errno", number(env, f64::from(*errno))?)?;
        set_property(env, error, "syscall", string(env, syscall)?)?;
    }
    Ok(error)
}

/// Throws `failure` as a JS Error (unless an exception is already pending).
pub fn throw(env: napi_env, failure: &Failure) {
    let mut pending = false;
    if unsafe { napi_is_exception_pending(env, &mut pending) } == NAPI_OK && pending {
        return;
    }
    match error_value(env, failure) {
        Ok(error) => unsafe {
            napi_throw(env, error);
        },
        Err(_) => {
            let code = c_string(failure.code());
            let message = c_string(&failure.message());
            unsafe { napi_throw_error(env, code.as_ptr(), message.as_ptr()) };
        }
    }
}

/// Runs a callback body: its value is returned, a Failure or a panic is thrown as a JS Error
/// (the returned napi_value is then null, which N-API reads as undefined).
pub fn guard(env: napi_env, body: impl FnOnce() -> Outcome<napi_value>) -> napi_value {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(Failure::from_panic(payload)));
    match result {
        Ok(value) => value,
        Err(failure) => {
            // Throwing can itself call into code that panics only on a broken engine; keep
            // even that from unwinding into C.
            let _ = catch_unwind(AssertUnwindSafe(|| throw(env, &failure)));
            ptr::null_mut()
        }
    }
}
