// [MS-HRL] 2.6 checksum: the one's complement of the 32-bit byte sum of a buffer, with one
// 4-byte field (the stored checksum) left out. Data checksums sum whole entries, so the byte
// sum runs with v128 lanes (64 bytes per step in four independent accumulators) and can be
// continued across pieces.

/** Steps summed into each accumulator's 16-bit lanes before widening (2 × 255 × 128 < 65536). */
const STEPS_PER_FOLD: usize = 128;

/**
 * Adds the bytes [ptr, ptr + lengthBytes) to `initialSum` (mod 2^32). Continue a sum across
 * pieces by passing the previous result; the [MS-HRL] checksum of the whole is `~sum`.
 */
export function hrlByteSum(ptr: usize, lengthBytes: usize, initialSum: u32): u32 {
  let total = i32x4.splat(0);
  let p = ptr;
  let blocks = lengthBytes >> 6; // 64 bytes: four independent 16-byte lanes
  while (blocks > 0) {
    const steps = blocks < STEPS_PER_FOLD ? blocks : STEPS_PER_FOLD;
    let a = i16x8.splat(0);
    let b = i16x8.splat(0);
    let c = i16x8.splat(0);
    let d = i16x8.splat(0);
    for (let i: usize = 0; i < steps; i++) {
      a = i16x8.add(a, i16x8.extadd_pairwise_i8x16_u(v128.load(p)));
      b = i16x8.add(b, i16x8.extadd_pairwise_i8x16_u(v128.load(p, 16)));
      c = i16x8.add(c, i16x8.extadd_pairwise_i8x16_u(v128.load(p, 32)));
      d = i16x8.add(d, i16x8.extadd_pairwise_i8x16_u(v128.load(p, 48)));
      p += 64;
    }
    total = i32x4.add(total, i32x4.add(i32x4.extadd_pairwise_i16x8_u(a), i32x4.extadd_pairwise_i16x8_u(b)));
    total = i32x4.add(total, i32x4.add(i32x4.extadd_pairwise_i16x8_u(c), i32x4.extadd_pairwise_i16x8_u(d)));
    blocks -= steps;
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
