//! Why a native call failed, before it becomes a JS Error: an argument that failed validation,
//! an errno from a system call, an N-API call that failed, or a caught Rust panic.

use std::any::Any;
use std::os::raw::c_int;

use crate::sys;

/// A failed native call. Converted to a JS Error with `code` set by `js::error_value`.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Bad argument from the caller: code VHDSYNC_INVALID_ARGUMENT, nothing was done.
    Invalid(String),
    /// A system call failed: code is the errno name (ENOSPC, EOPNOTSUPP, ...).
    Os { errno: c_int, syscall: &'static str },
    /// An N-API call failed (a bug or an engine shutting down): code VHDSYNC_INTERNAL.
    Napi { status: i32, what: &'static str },
    /// A Rust panic caught at the FFI boundary: code VHDSYNC_INTERNAL.
    Panic(String),
}

impl Failure {
    /// The errno of the last failed call in this thread, attributed to `syscall`.
    pub fn last_os(syscall: &'static str) -> Failure {
        Failure::Os { errno: sys::errno(), syscall }
    }

    /// A caught panic payload.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        let message = if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "unknown panic".to_string()
        };
        Failure::Panic(message)
    }

    /// The JS `code` of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Invalid(_) => "VHDSYNC_INVALID_ARGUMENT",
            Failure::Os { errno, .. } => sys::errno_name(*errno).0,
            Failure::Napi { .. } | Failure::Panic(_) => "VHDSYNC_INTERNAL",
        }
    }

    /// The JS `message` of the error.
    pub fn message(&self) -> String {
        match self {
            Failure::Invalid(text) => text.clone(),
            Failure::Os { errno, syscall } => {
                let (name, description) = sys::errno_name(*errno);
                format!("{syscall}: {description} ({name}, errno {errno})")
            }
            Failure::Napi { status, what } => format!("N-API call {what} failed with status {status}"),
            Failure::Panic(text) => format!("internal error in the native addon (panic caught): {text}"),
        }
    }
}

/// Result of a native operation.
pub type Outcome<T> = Result<T, Failure>;
