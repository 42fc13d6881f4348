// Big-endian field access and the one's-complement checksum shared by the VHD footer and
// dynamic disk header (VHD spec 1.0, "Checksum Calculation" appendix).

/** Reads a big-endian u16 at `ptr`. */
export function be16(ptr: usize): u32 {
  return <u32>bswap<u16>(load<u16>(ptr));
}

/** Reads a big-endian u32 at `ptr`. */
export function be32(ptr: usize): u32 {
  return bswap<u32>(load<u32>(ptr));
}

/** Reads a big-endian u64 at `ptr`. */
export function be64(ptr: usize): u64 {
  return bswap<u64>(load<u64>(ptr));
}

/** Writes `value` as a big-endian u16 at `ptr`. */
export function putBe16(ptr: usize, value: u32): void {
  store<u16>(ptr, bswap<u16>(<u16>value));
}

/** Writes `value` as a big-endian u32 at `ptr`. */
export function putBe32(ptr: usize, value: u32): void {
  store<u32>(ptr, bswap<u32>(value));
}

/** Writes `value` as a big-endian u64 at `ptr`. */
export function putBe64(ptr: usize, value: u64): void {
  store<u64>(ptr, bswap<u64>(value));
}

/** One's complement of the sum of `lengthBytes` bytes, the 4 checksum bytes at `skipOffset` counted as zero. */
export function onesComplementSum(ptr: usize, lengthBytes: usize, skipOffset: usize): u32 {
  let sum: u32 = 0;
  for (let i: usize = 0; i < lengthBytes; i++) {
    if (i - skipOffset < 4) continue; // unsigned: true only for skipOffset <= i < skipOffset + 4
    sum += <u32>load<u8>(ptr + i);
  }
  return ~sum;
}

/** Copies `lengthBytes` bytes (no overlap). */
export function copyBytes(to: usize, from: usize, lengthBytes: usize): void {
  memory.copy(to, from, lengthBytes);
}

/** Sets `lengthBytes` bytes to zero. */
export function zeroBytes(ptr: usize, lengthBytes: usize): void {
  memory.fill(ptr, 0, lengthBytes);
}

/** Whether `value` is a power of two (zero is not). */
export function isPowerOfTwo(value: u64): bool {
  return value != 0 && (value & (value - 1)) == 0;
}
