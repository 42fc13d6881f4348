// [MS-HRL] 2.6 checksum: the one's complement of the 32-bit byte sum of a buffer, with one
// 4-byte field (the stored checksum) left out. Data checksums sum whole entries, so the byte
// sum runs with v128 lanes (16 bytes per step) and can be continued across pieces.

/** Steps of 16 bytes summed into 16-bit lanes before widening (2 × 255 × 128 < 65536). */
const STEPS_PER_FOLD: usize = 128;

/**
 * Adds the bytes [ptr, ptr + lengthBytes) to `initialSum` (mod 2^32). Continue a sum across
 * pieces by passing the previous result; the [MS-HRL] checksum of the whole is `~sum`.
 */
export function hrlByteSum(ptr: usize, lengthBytes: usize, initialSum: u32): u32 {
  let total = i32x4.splat(0);
  let p = ptr;
  let vectors = lengthBytes >> 4;
  while (vectors > 0) {
    const steps = vectors < STEPS_PER_FOLD ? vectors : STEPS_PER_FOLD;
    let lanes16 = i16x8.splat(0);
    for (let i: usize = 0; i < steps; i++) {
      lanes16 = i16x8.add(lanes16, i16x8.extadd_pairwise_i8x16_u(v128.load(p)));
      p += 16;
    }
    total = i32x4.add(total, i32x4.extadd_pairwise_i16x8_u(lanes16));
    vectors -= steps;
  }
  let sum: u32 =
    initialSum +
    <u32>i32x4.extract_lane(total, 0) +
    <u32>i32x4.extract_lane(total, 1) +
    <u32>i32x4.extract_lane(total, 2) +
    <u32>i32x4.extract_lane(total, 3);
  const end = ptr + lengthBytes;
  while (p < end) {
    sum += <u32>load<u8>(p);
    p++;
  }
  return sum;
}

/** [MS-HRL] 2.6 checksum of a whole buffer (no field skipped): `~byteSum`. */
export function hrlDataChecksum(ptr: usize, lengthBytes: usize): u32 {
  return ~hrlByteSum(ptr, lengthBytes, 0);
}

/**
 * [MS-HRL] 2.6 checksum of a structure whose 4-byte checksum field sits at `skipOffset`:
 * the field's bytes are not summed (the same as summing them as zero).
 */
export function checksumSkipping(ptr: usize, lengthBytes: usize, skipOffset: usize): u32 {
  let sum = hrlByteSum(ptr, lengthBytes, 0);
  for (let i: usize = 0; i < 4; i++) sum -= <u32>load<u8>(ptr + skipOffset + i);
  return ~sum;
}
