//! Reading and validating JS arguments. Numbers must be finite, integral, non-negative and
//! exactly representable (≤ 2^53 - 1); offset + length must not overflow that either. Nothing
//! is clamped: anything else is a VHDSYNC_INVALID_ARGUMENT error and no system call is made.

use std::os::raw::c_int;
use std::ptr;

use crate::failure::{Failure, Outcome};
use crate::js::check;
use crate::napi::*;

/// Largest integer a JS number holds exactly (Number.MAX_SAFE_INTEGER).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

const MAX_ARGS: usize = 17;

/// A number roughly as JS prints it: exponent notation for huge magnitudes.
fn show(value: f64) -> String {
    if value.abs() < 1e21 {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// The arguments of one call.
pub struct Args {
    env: napi_env,
    values: [napi_value; MAX_ARGS],
    count: usize,
}

impl Args {
    /// Reads up to MAX_ARGS arguments of the current call.
    pub fn read(env: napi_env, info: napi_callback_info) -> Outcome<Args> {
        let mut values = [ptr::null_mut(); MAX_ARGS];
        let mut count = MAX_ARGS;
        let status = unsafe { napi_get_cb_info(env, info, &mut count, values.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
        check(status, "napi_get_cb_info")?;
        Ok(Args { env, values, count: count.min(MAX_ARGS) })
    }

    fn value_type(&self, index: usize) -> Outcome<napi_valuetype> {
        if index >= self.count {
            return Ok(NAPI_UNDEFINED);
        }
        let mut kind = NAPI_UNDEFINED;
        check(unsafe { napi_typeof(self.env, self.values[index], &mut kind) }, "napi_typeof")?;
        Ok(kind)
    }

    /// A non-negative safe integer.
    pub fn integer(&self, index: usize, name: &str) -> Outcome<u64> {
        self.integer_up_to(index, name, MAX_SAFE_INTEGER, "2^53-1")
    }

    /// An integer in [0, max]; `max_text` names the bound in the error message.
    fn integer_up_to(&self, index: usize, name: &str, max: f64, max_text: &str) -> Outcome<u64> {
        if self.value_type(index)? != NAPI_NUMBER {
            return Err(Failure::Invalid(format!("{name} must be a number")));
        }
        let mut value = 0.0;
        check(unsafe { napi_get_value_double(self.env, self.values[index], &mut value) }, "napi_get_value_double")?;
        if !value.is_finite() || value.fract() != 0.0 {
            return Err(Failure::Invalid(format!("{name} must be an integer, got {}", show(value))));
        }
        if !(0.0..=max).contains(&value) {
            return Err(Failure::Invalid(format!("{name} must be between 0 and {max_text}, got {}", show(value))));
        }
        Ok(value as u64)
    }

    /// A file descriptor: an integer in [0, 2^31-1].
    pub fn fd(&self, index: usize, name: &str) -> Outcome<c_int> {
        let fd = self.integer_up_to(index, name, f64::from(c_int::MAX), "2^31-1 (a file descriptor)")?;
        Ok(fd as c_int)
    }

    /// An (offset, length) pair whose end offset + length is still a safe integer.
    pub fn range(&self, offset_index: usize, length_index: usize) -> Outcome<(u64, u64)> {
        let offset = self.integer(offset_index, "offset")?;
        let length = self.integer(length_index, "length")?;
        if offset + length > MAX_SAFE_INTEGER as u64 {
            return Err(Failure::Invalid(format!("offset + length overflows 2^53-1 ({offset} + {length})")));
        }
        Ok((offset, length))
    }

    /// An ArrayBuffer argument (e.g. a WebAssembly.Memory's buffer): its data address and length.
    /// The address is only valid during this call, on this thread.
    pub fn array_buffer(&self, index: usize, name: &str) -> Outcome<(usize, usize)> {
        let mut is_buffer = false;
        if index < self.count {
            check(unsafe { napi_is_arraybuffer(self.env, self.values[index], &mut is_buffer) }, "napi_is_arraybuffer")?;
        }
        if !is_buffer {
            return Err(Failure::Invalid(format!("{name} must be an ArrayBuffer")));
        }
        let mut data = ptr::null_mut();
        let mut length = 0usize;
        check(unsafe { napi_get_arraybuffer_info(self.env, self.values[index], &mut data, &mut length) }, "napi_get_arraybuffer_info")?;
        Ok((data as usize, length))
    }

    /// A non-negative safe integer, or None when the argument is undefined or null.
    pub fn optional_integer(&self, index: usize, name: &str) -> Outcome<Option<u64>> {
        match self.value_type(index)? {
            NAPI_UNDEFINED | NAPI_NULL => Ok(None),
            _ => self.integer(index, name).map(Some),
        }
    }

    /// An ArrayBuffer argument, or None when the argument is undefined or null.
    pub fn optional_array_buffer(&self, index: usize, name: &str) -> Outcome<Option<(usize, usize)>> {
        match self.value_type(index)? {
            NAPI_UNDEFINED | NAPI_NULL => Ok(None),
            _ => self.array_buffer(index, name).map(Some),
        }
    }

    /// A short ASCII string argument (at most 31 bytes).
    pub fn short_string(&self, index: usize, name: &str) -> Outcome<String> {
        if self.value_type(index)? != NAPI_STRING {
            return Err(Failure::Invalid(format!("{name} must be a string")));
        }
        let mut buffer = [0u8; 32];
        let mut written = 0usize;
        let status = unsafe {
            napi_get_value_string_utf8(self.env, self.values[index], buffer.as_mut_ptr().cast(), buffer.len(), &mut written)
        };
        check(status, "napi_get_value_string_utf8")?;
        Ok(String::from_utf8_lossy(&buffer[..written]).into_owned())
    }
}

/// A caller's stream state (a buffer as Args::array_buffer gives it) as its first `bytes` bytes,
/// checked to be that long and not to be `memory`, the buffer of the data fed with it.
///
/// # Safety
/// `state` must be a live buffer used by this thread only during the call.
pub unsafe fn stream_state<'a>(state: (usize, usize), memory: Option<(usize, usize)>, bytes: usize) -> Outcome<&'a mut [u8]> {
    if state.1 < bytes {
        return Err(Failure::Invalid(format!("the stream state must hold {bytes} bytes, got {}", state.1)));
    }
    if memory.is_some_and(|memory| memory.0 == state.0) {
        return Err(Failure::Invalid("the stream state must be its own buffer, not the data's memory".to_string()));
    }
    // SAFETY: see the function's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(state.0 as *mut u8, bytes) })
}

/// `length` bytes at `offset` of a caller's buffer, checked to lie inside it.
///
/// # Safety
/// `memory` must be a live buffer that nothing writes while the slice is in use.
pub unsafe fn buffer_range<'a>(memory: (usize, usize), offset: u64, length: u64) -> Outcome<&'a [u8]> {
    if offset.checked_add(length).is_none_or(|end| end > memory.1 as u64) {
        return Err(Failure::Invalid(format!("the data lies outside the memory ({} bytes)", memory.1)));
    }
    // SAFETY: the range lies inside the buffer (checked); see the function's contract.
    Ok(unsafe { std::slice::from_raw_parts((memory.0 as *const u8).add(offset as usize), length as usize) })
}
