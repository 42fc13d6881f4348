//! vhdsync's native addon: SEEK_DATA/SEEK_HOLE extents, hole punching, zero ranges, reflinks,
//! copy_file_range, block device geometry, fdatasync, fadvise, and file pages mapped into a
//! WebAssembly memory (zero-copy reads) for Node, with no crate
//! dependencies. Every export validates its arguments and throws a JS Error with a `code`
//! (VHDSYNC_INVALID_ARGUMENT, an errno name such as ENOSPC, or VHDSYNC_INTERNAL for a caught
//! panic); nothing unwinds across the FFI boundary. See docs/native.md.

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("the vhdsync native addon supports 64-bit Linux only (portable fallbacks cover the rest)");

mod appender;
mod args;
mod block_digest;
mod buffers;
mod failure;
mod gate;
mod gather;
mod hash_scan;
mod js;
mod map;
mod napi;
mod ops;
mod scan;
mod sha256;
mod spans;
mod sys;
mod task;
#[cfg(test)]
mod test_bytes;
mod xxh3;
mod xxh64;

use std::os::raw::c_int;
use std::ptr;

use args::Args;
use failure::{Failure, Outcome};
use js::{guard, Output};
use napi::*;
use task::{run_async, run_sync, Job};

fn parse_extents(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let (offset, length) = args.range(1, 2)?;
    Ok(Box::new(move || ops::extents(fd, offset, length).map(Output::Extents)))
}

/// The first data offset at or after an offset, or -1 when there is none (ops::next_data).
fn parse_next_data(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let offset = args.integer(1, "offset")?;
    Ok(Box::new(move || ops::next_data(fd, offset).map(|data| Output::Number(data.map_or(-1.0, |at| at as f64)))))
}

/// "fiemap" or "lseek": how extents() maps this descriptor's file (doctor and the tests).
fn parse_extents_method(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    Ok(Box::new(move || Ok(Output::Text(ops::extents_method(fd)))))
}

fn parse_punch_hole(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let (offset, length) = args.range(1, 2)?;
    Ok(Box::new(move || ops::punch_hole(fd, offset, length).map(|_| Output::Undefined)))
}

fn parse_zero_range(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let (offset, length) = args.range(1, 2)?;
    Ok(Box::new(move || ops::zero_range(fd, offset, length).map(|_| Output::Undefined)))
}

fn parse_reflink(args: &Args) -> Outcome<Job> {
    let src_fd = args.fd(0, "srcFd")?;
    let dst_fd = args.fd(1, "dstFd")?;
    Ok(Box::new(move || ops::reflink(src_fd, dst_fd).map(|_| Output::Undefined)))
}

fn parse_copy_range(args: &Args) -> Outcome<Job> {
    let src_fd = args.fd(0, "srcFd")?;
    let dst_fd = args.fd(2, "dstFd")?;
    let (src_offset, length) = args.range(1, 4)?;
    let (dst_offset, _) = args.range(3, 4)?;
    Ok(Box::new(move || {
        ops::copy_range(src_fd, src_offset, dst_fd, dst_offset, length).map(|copied| Output::Number(copied as f64))
    }))
}

fn parse_block_device_info(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    Ok(Box::new(move || ops::block_device_info(fd).map(Output::Device)))
}

fn parse_bind_abstract_socket(args: &Args) -> Outcome<Job> {
    let (data, length) = args.array_buffer(0, "name")?;
    // SAFETY: the ArrayBuffer lives during this synchronous call; the bytes are copied here.
    let name = unsafe { std::slice::from_raw_parts(data as *const u8, length) }.to_vec();
    Ok(Box::new(move || ops::bind_abstract(&name).map(|fd| Output::Number(fd as f64))))
}

fn parse_fdatasync(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    Ok(Box::new(move || ops::fdatasync(fd).map(|_| Output::Undefined)))
}

/// POSIX_FADV_* by name.
fn advice_number(name: &str) -> Option<c_int> {
    let names = ["normal", "random", "sequential", "willneed", "dontneed", "noreuse"];
    names.iter().position(|candidate| *candidate == name).map(|index| index as c_int)
}

fn parse_fadvise(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let (offset, length) = args.range(1, 2)?;
    let name = args.short_string(3, "advice")?;
    let advice = advice_number(&name).ok_or_else(|| {
        Failure::Invalid(format!("advice must be normal, random, sequential, willneed, dontneed or noreuse; got {name:?}"))
    })?;
    Ok(Box::new(move || ops::fadvise(fd, offset, length, advice).map(|_| Output::Undefined)))
}

fn parse_map_file(args: &Args) -> Outcome<Job> {
    let buffer = args.array_buffer(0, "memory")?;
    let (memory_offset, length) = args.range(1, 4)?;
    let fd = args.fd(2, "fd")?;
    let (file_offset, _) = args.range(3, 4)?;
    Ok(Box::new(move || map::map_file(buffer, memory_offset, fd, file_offset, length).map(|_| Output::Undefined)))
}

fn parse_unmap_file(args: &Args) -> Outcome<Job> {
    let buffer = args.array_buffer(0, "memory")?;
    let (memory_offset, length) = args.range(1, 2)?;
    Ok(Box::new(move || map::unmap_file(buffer, memory_offset, length).map(|_| Output::Undefined)))
}

fn parse_hash_blocks(args: &Args) -> Outcome<Job> {
    let buffer = args.array_buffer(0, "memory")?;
    let algorithm = block_digest::Algorithm::from_id(args.integer(1, "algorithm")?)?;
    let (data, length) = args.range(2, 3)?;
    let block_size = args.integer(4, "blockSize")?;
    let out = args.integer(5, "digestsOffset")?;
    let zero_out = args.integer(6, "zeroFlagsOffset")?;
    Ok(Box::new(move || {
        block_digest::hash_blocks_nonzero(buffer, algorithm, data, length, block_size, out, zero_out).map(|count| Output::Number(count as f64))
    }))
}

fn parse_count_data_states(args: &Args) -> Outcome<Job> {
    let buffer = args.array_buffer(0, "buffer")?;
    let (offset, length) = args.range(1, 2)?;
    Ok(Box::new(move || hash_scan::count_data_states(buffer, offset, length).map(Output::Number)))
}

fn parse_stream_reset(args: &Args) -> Outcome<Job> {
    let state = args.array_buffer(0, "state")?;
    let total = args.integer(1, "totalLength")?;
    Ok(Box::new(move || xxh3::stream_reset(state, total).map(|_| Output::Undefined)))
}

fn parse_stream_update(args: &Args) -> Outcome<Job> {
    let memory = args.array_buffer(0, "memory")?;
    let (data, length) = args.range(1, 2)?;
    let state = args.array_buffer(3, "state")?;
    Ok(Box::new(move || xxh3::stream_update(memory, data, length, state).map(|_| Output::Undefined)))
}

fn parse_stream_digest(args: &Args) -> Outcome<Job> {
    let state = args.array_buffer(0, "state")?;
    let variant = xxh3::Variant::from_id(args.integer(1, "algorithm")?)?;
    Ok(Box::new(move || xxh3::stream_digest(state, variant).map(|_| Output::Undefined)))
}

fn parse_sha256_reset(args: &Args) -> Outcome<Job> {
    let state = args.array_buffer(0, "state")?;
    Ok(Box::new(move || sha256::stream_reset(state).map(|_| Output::Undefined)))
}

fn parse_sha256_update(args: &Args) -> Outcome<Job> {
    let memory = args.array_buffer(0, "memory")?;
    let (data, length) = args.range(1, 2)?;
    let state = args.array_buffer(3, "state")?;
    Ok(Box::new(move || sha256::stream_update(block_digest::sha_engine(), memory, data, length, state).map(|_| Output::Undefined)))
}

fn parse_sha256_digest(args: &Args) -> Outcome<Job> {
    let state = args.array_buffer(0, "state")?;
    Ok(Box::new(move || sha256::stream_digest(block_digest::sha_engine(), state).map(|_| Output::Undefined)))
}

fn parse_appender_open(args: &Args) -> Outcome<Job> {
    let fd = args.fd(0, "fd")?;
    let limit = args.integer(1, "limit")?;
    let idle = args.integer(2, "idle")? != 0;
    Ok(Box::new(move || appender::open(fd, limit, idle).map(|id| Output::Number(id as f64))))
}

fn parse_appender_submit(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "appender")?;
    let (address, size) = args.array_buffer(1, "memory")?;
    let (offset, length) = args.range(2, 3)?;
    let position = args.integer(4, "position")?;
    if offset + length > size as u64 {
        return Err(Failure::Invalid(format!("range {offset}+{length} is outside the {size}-byte buffer")));
    }
    Ok(Box::new(move || {
        // SAFETY: the range lies inside the ArrayBuffer; the caller (src/io/background-appender.ts)
        // lends only WebAssembly.Memory that never grows and leaves it unchanged until the job
        // is finished (see appender::submit).
        unsafe { appender::submit(id, address + offset as usize, length as usize, position) }.map(|token| Output::Number(token as f64))
    }))
}

fn parse_appender_finished(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "appender")?;
    let token = args.integer(1, "token")?;
    Ok(Box::new(move || appender::finished(id, token).map(|done| Output::Number(f64::from(u8::from(done))))))
}

fn parse_appender_wait(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "appender")?;
    let token = args.integer(1, "token")?;
    Ok(Box::new(move || appender::wait(id, token).map(|_| Output::Undefined)))
}

fn parse_appender_drain(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "appender")?;
    Ok(Box::new(move || appender::drain(id).map(|_| Output::Undefined)))
}

fn parse_appender_close(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "appender")?;
    Ok(Box::new(move || {
        appender::close(id).map(|stats| {
            Output::Numbers(vec![
                ("queued", stats.queued as f64),
                ("byThread", stats.by_thread as f64),
                ("byDrain", stats.by_drain as f64),
                ("refused", stats.refused as f64),
                ("idle", stats.idle as f64),
            ])
        })
    }))
}

fn parse_compare_segment(args: &Args) -> Outcome<Job> {
    let source_fd = args.fd(0, "sourceFd")?;
    let target_fd = args.fd(1, "targetFd")?;
    let block = args.integer(2, "blockSize")?;
    let unit = args.integer(3, "unitSize")?;
    let (start, length) = args.range(4, 5)?;
    let active = parse_ranges(args, 6)?;
    // Bits: 1 write the differences; 2 the target reads as zeros (fresh); 4 map the pages.
    let (mode, read) = parse_mode(args, 3)?;
    let out = args.array_buffer(9, "changes")?;
    let gate = parse_gate(args, 10)?;
    // The target's bytes in the caller's memory (ranges' target offsets point into it).
    let target_memory = args.optional_array_buffer(11, "targetMemory")?;
    // The source's bytes in the caller's memory (its source offsets point into it).
    let source_memory = args.optional_array_buffer(12, "sourceMemory")?;
    // Either side's pieces in several files (gather.rs).
    let source_gather = parse_gather(args, 13, "sourceGather")?;
    let target_gather = parse_gather(args, 14, "targetGather")?;
    let job = scan::CompareJob {
        source_fd,
        target_fd,
        block,
        unit,
        start,
        end: start + length,
        active,
        write: mode & 1 != 0,
        target_zeros: mode & 2 != 0,
        out,
        read,
        target_memory,
        source_memory,
        source_gather,
        target_gather,
    };
    // compare_segment validates the job (on the pool thread for the async form).
    Ok(gated(gate, move || {
        scan::compare_segment(&job).map(|counts| {
            Output::Numbers(vec![
                ("blocksCompared", counts.blocks_compared as f64),
                ("blocksChanged", counts.blocks_changed as f64),
                ("blocksNonZero", counts.blocks_non_zero as f64),
                ("bytesWritten", counts.bytes_written as f64),
                ("changes", counts.changes as f64),
            ])
        })
    }))
}

/// A segment job's mode (argument 8): its own bits (those in `own`), and bit 4 to map the
/// files' pages instead of reading them.
fn parse_mode(args: &Args, own: u64) -> Outcome<(u64, scan::ReadMode)> {
    let mode = args.integer(8, "mode")?;
    if mode & !(own | 4) != 0 {
        return Err(Failure::Invalid(format!("mode {mode} has bits other than {own} and 4")));
    }
    Ok((mode & own, if mode & 4 != 0 { scan::ReadMode::Map } else { scan::ReadMode::Read }))
}

/// The job gate a segment job waits at before it runs (`gateOpen`), if the caller gave one.
fn parse_gate(args: &Args, index: usize) -> Outcome<Option<std::sync::Arc<gate::Gate>>> {
    args.optional_integer(index, "gate")?.map(gate::find).transpose()
}

/// A segment job that first waits at `gate`, if any, and holds its place there while `work` runs.
fn gated(gate: Option<std::sync::Arc<gate::Gate>>, work: impl FnOnce() -> Outcome<Output> + Send + 'static) -> Job {
    Box::new(move || {
        let _pass = gate.as_ref().map(gate::Gate::enter);
        work()
    })
}

fn parse_gate_open(args: &Args) -> Outcome<Job> {
    let capacity = args.integer(0, "capacity")?;
    Ok(Box::new(move || gate::open(capacity).map(|id| Output::Number(id as f64))))
}

fn parse_gate_close(args: &Args) -> Outcome<Job> {
    let id = args.integer(0, "gate")?;
    Ok(Box::new(move || gate::close(id).map(|_| Output::Undefined)))
}

/// (start, end, sourceAt, targetAt) f64 quadruples as ranges (a negative offset: that side
/// reads as zeros there).
fn parse_ranges(args: &Args, index: usize) -> Outcome<Vec<scan::ActiveRange>> {
    let ranges = args.array_buffer(index, "ranges")?;
    let range_count = args.integer(index + 1, "rangeCount")? as usize;
    if ranges.0 % 8 != 0 || range_count.checked_mul(32).is_none_or(|bytes| bytes > ranges.1) {
        return Err(Failure::Invalid(format!("ranges holds fewer than {range_count} (start, end, sourceAt, targetAt) f64 quadruples")));
    }
    // SAFETY: an 8-aligned ArrayBuffer of at least range_count * 32 bytes, read on this thread now.
    let quads = unsafe { std::slice::from_raw_parts(ranges.0 as *const f64, range_count * 4) };
    let place = |value: f64| if value < 0.0 { None } else { Some(value as u64) };
    Ok(quads
        .chunks_exact(4)
        .map(|quad| scan::ActiveRange { from: quad[0] as u64, to: quad[1] as u64, source_at: place(quad[2]), target_at: place(quad[3]) })
        .collect())
}

/// An optional gather (gather.rs): an ArrayBuffer of f64 values, read on this thread now.
fn parse_gather(args: &Args, index: usize, name: &str) -> Outcome<Option<gather::Gather>> {
    let Some((address, length)) = args.optional_array_buffer(index, name)? else { return Ok(None) };
    if address % 8 != 0 || length % 8 != 0 {
        return Err(Failure::Invalid(format!("{name} must hold whole f64 values")));
    }
    // SAFETY: an 8-aligned ArrayBuffer of `length` bytes, read on this thread now (and copied).
    let values = if length == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(address as *const f64, length / 8) } };
    gather::Gather::parse(values).map(Some)
}

fn parse_hash_segment(args: &Args) -> Outcome<Job> {
    let source_fd = args.fd(0, "sourceFd")?;
    let target_fd = args.fd(1, "targetFd")?;
    let algorithm = block_digest::Algorithm::from_id(args.integer(2, "algorithm")?)?;
    let block = args.integer(3, "blockSize")?;
    let (start, length) = args.range(4, 5)?;
    let active = parse_ranges(args, 6)?;
    // Bits: 1 write the differing blocks; 4 map the pages.
    let (mode, read) = parse_mode(args, 1)?;
    let write = mode != 0;
    let flags_out = args.array_buffer(9, "flags")?;
    let digests_out = args.array_buffer(10, "digests")?;
    let changes_out = args.array_buffer(11, "changes")?;
    let target_flags = args.optional_array_buffer(12, "targetFlags")?;
    let target_digests = args.optional_array_buffer(13, "targetDigests")?;
    let target = match (target_flags, target_digests) {
        (Some(flags), Some(digests)) => Some(hash_scan::TargetFrame { flags, digests }),
        (None, None) => None,
        _ => return Err(Failure::Invalid("targetFlags and targetDigests go together".into())),
    };
    let gate = parse_gate(args, 14)?;
    // The source's bytes in the caller's memory (its source offsets point into it).
    let source_memory = args.optional_array_buffer(15, "sourceMemory")?;
    let source_gather = parse_gather(args, 16, "sourceGather")?;
    let job = hash_scan::HashJob {
        source_fd,
        target_fd,
        algorithm,
        block,
        start,
        end: start + length,
        active,
        write,
        flags_out,
        digests_out,
        changes_out,
        target,
        read,
        source_memory,
        source_gather,
    };
    // hash_segment validates the job (on the pool thread for the async form).
    Ok(gated(gate, move || {
        hash_scan::hash_segment(&job).map(|counts| {
            Output::Numbers(vec![
                ("dataBlocks", counts.data_blocks as f64),
                ("unallocatedBlocks", counts.unallocated_blocks as f64),
                ("changedBlocks", counts.changed_blocks as f64),
                ("bytesWritten", counts.bytes_written as f64),
                ("changes", counts.changes as f64),
            ])
        })
    }))
}

/// Test hook: a job that panics, proving panics become JS errors on either thread.
fn parse_panic_for_test(_args: &Args) -> Outcome<Job> {
    Ok(Box::new(|| panic!("deliberate panic (panicForTest)")))
}

/// Declares the sync and async N-API callbacks of each operation.
macro_rules! callbacks {
    ($($sync:ident, $async:ident, $parse:ident, $name:literal;)*) => {
        $(
            extern "C" fn $sync(env: napi_env, info: napi_callback_info) -> napi_value {
                run_sync(env, info, $parse)
            }
            extern "C" fn $async(env: napi_env, info: napi_callback_info) -> napi_value {
                run_async(env, info, $parse, concat!("vhdsync:", $name))
            }
        )*
    };
}

callbacks! {
    extents_sync, extents_async, parse_extents, "extents";
    punch_hole_sync, punch_hole_async, parse_punch_hole, "punchHole";
    zero_range_sync, zero_range_async, parse_zero_range, "zeroRange";
    reflink_sync, reflink_async, parse_reflink, "reflink";
    copy_range_sync, copy_range_async, parse_copy_range, "copyRange";
    block_device_info_sync, block_device_info_async, parse_block_device_info, "blockDeviceInfo";
    fdatasync_sync, fdatasync_async, parse_fdatasync, "fdatasync";
    fadvise_sync, fadvise_async, parse_fadvise, "fadvise";
    compare_segment_sync, compare_segment_async, parse_compare_segment, "compareSegment";
    hash_segment_sync, hash_segment_async, parse_hash_segment, "hashSegment";
    panic_sync, panic_async, parse_panic_for_test, "panicForTest";
}

/// Declares sync-only N-API callbacks: operations on a caller's memory, which must not leave
/// the calling thread, and quick bookkeeping (job gates).
macro_rules! sync_callbacks {
    ($($sync:ident, $parse:ident;)*) => {
        $(
            extern "C" fn $sync(env: napi_env, info: napi_callback_info) -> napi_value {
                run_sync(env, info, $parse)
            }
        )*
    };
}

sync_callbacks! {
    extents_method_sync, parse_extents_method;
    next_data_sync, parse_next_data;
    bind_abstract_socket_sync, parse_bind_abstract_socket;
    map_file_sync, parse_map_file;
    unmap_file_sync, parse_unmap_file;
    hash_blocks_sync, parse_hash_blocks;
    count_data_states_sync, parse_count_data_states;
    stream_reset_sync, parse_stream_reset;
    stream_update_sync, parse_stream_update;
    stream_digest_sync, parse_stream_digest;
    sha256_reset_sync, parse_sha256_reset;
    sha256_update_sync, parse_sha256_update;
    sha256_digest_sync, parse_sha256_digest;
    appender_open_sync, parse_appender_open;
    appender_submit_sync, parse_appender_submit;
    appender_finished_sync, parse_appender_finished;
    gate_open_sync, parse_gate_open;
    gate_close_sync, parse_gate_close;
}

/// Declares async-only N-API callbacks: operations that may wait for the appender's idle-priority
/// thread, which the main thread must never do.
macro_rules! async_callbacks {
    ($($async:ident, $parse:ident, $name:literal;)*) => {
        $(
            extern "C" fn $async(env: napi_env, info: napi_callback_info) -> napi_value {
                run_async(env, info, $parse, concat!("vhdsync:", $name))
            }
        )*
    };
}

async_callbacks! {
    appender_wait_async, parse_appender_wait, "appenderWait";
    appender_drain_async, parse_appender_drain, "appenderDrain";
    appender_close_async, parse_appender_close, "appenderClose";
}

const EXPORTS: &[(&str, napi_callback)] = &[
    ("extents", extents_sync),
    ("extentsAsync", extents_async),
    ("extentsMethod", extents_method_sync),
    ("nextData", next_data_sync),
    ("punchHole", punch_hole_sync),
    ("punchHoleAsync", punch_hole_async),
    ("zeroRange", zero_range_sync),
    ("zeroRangeAsync", zero_range_async),
    ("reflink", reflink_sync),
    ("reflinkAsync", reflink_async),
    ("copyRange", copy_range_sync),
    ("copyRangeAsync", copy_range_async),
    ("blockDeviceInfo", block_device_info_sync),
    ("blockDeviceInfoAsync", block_device_info_async),
    ("bindAbstractSocket", bind_abstract_socket_sync),
    ("fdatasync", fdatasync_sync),
    ("fdatasyncAsync", fdatasync_async),
    ("fadvise", fadvise_sync),
    ("fadviseAsync", fadvise_async),
    ("compareSegment", compare_segment_sync),
    ("compareSegmentAsync", compare_segment_async),
    ("hashSegment", hash_segment_sync),
    ("hashSegmentAsync", hash_segment_async),
    ("mapFile", map_file_sync),
    ("unmapFile", unmap_file_sync),
    ("hashBlocksNonZero", hash_blocks_sync),
    ("countDataStates", count_data_states_sync),
    ("xxh3StreamReset", stream_reset_sync),
    ("xxh3StreamUpdate", stream_update_sync),
    ("xxh3StreamDigest", stream_digest_sync),
    ("sha256StreamReset", sha256_reset_sync),
    ("sha256StreamUpdate", sha256_update_sync),
    ("sha256StreamDigest", sha256_digest_sync),
    ("appenderOpen", appender_open_sync),
    ("appenderSubmit", appender_submit_sync),
    ("appenderFinished", appender_finished_sync),
    ("gateOpen", gate_open_sync),
    ("gateClose", gate_close_sync),
    ("appenderWaitAsync", appender_wait_async),
    ("appenderDrainAsync", appender_drain_async),
    ("appenderCloseAsync", appender_close_async),
    ("panicForTest", panic_sync),
    ("panicForTestAsync", panic_async),
];

fn register(env: napi_env, exports: napi_value) -> Outcome<napi_value> {
    for (name, callback) in EXPORTS {
        let mut function = ptr::null_mut();
        let status =
            unsafe { napi_create_function(env, name.as_ptr().cast(), name.len(), *callback, ptr::null_mut(), &mut function) };
        js::check(status, "napi_create_function")?;
        js::set_property(env, exports, name, function)?;
    }
    js::set_property(env, exports, "pageSize", js::number(env, map::page_size() as f64)?)?;
    js::set_property(env, exports, "xxh3StreamStateBytes", js::number(env, xxh3::STREAM_STATE_BYTES as f64)?)?;
    js::set_property(env, exports, "xxh3StreamDigestOffset", js::number(env, xxh3::STREAM_DIGEST as f64)?)?;
    js::set_property(env, exports, "sha256StreamStateBytes", js::number(env, sha256::STREAM_STATE_BYTES as f64)?)?;
    js::set_property(env, exports, "sha256StreamDigestOffset", js::number(env, sha256::STREAM_DIGEST as f64)?)?;
    js::set_property(env, exports, "hashKernel", js::string(env, xxh3::Kernel::get().name())?)?;
    js::set_property(env, exports, "hashScanAlgorithms", js::string(env, block_digest::NAMES)?)?;
    js::set_property(env, exports, "shaEngine", js::string(env, block_digest::sha_engine().name())?)?;
    js::set_property(env, exports, "version", js::string(env, env!("CARGO_PKG_VERSION"))?)?;
    Ok(exports)
}

/// Entry point Node looks up when it loads the addon (N-API module registration).
#[no_mangle]
pub extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    guard(env, || register(env, exports))
}
