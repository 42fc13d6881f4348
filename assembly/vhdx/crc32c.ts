// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every VHDX structure
// ([MS-VHDX] section 2). Slicing-by-8 over a table in static memory, built on first use.

const POLY_REFLECTED: u32 = 0x82f63b78;
/** 8 tables of 256 u32 entries (8 KiB), zeroed static memory filled by initTable(). */
const TABLE: usize = memory.data(8 * 256 * 4, 64);
let tableReady = false;

function initTable(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let crc = n;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLY_REFLECTED : crc >>> 1;
    store<u32>(TABLE + (<usize>n << 2), crc);
  }
  for (let slice: usize = 1; slice < 8; slice++) {
    for (let n: usize = 0; n < 256; n++) {
      const previous = load<u32>(TABLE + ((slice - 1) << 10) + (n << 2));
      const value = (previous >>> 8) ^ load<u32>(TABLE + ((<usize>(previous & 0xff)) << 2));
      store<u32>(TABLE + (slice << 10) + (n << 2), value);
    }
  }
  tableReady = true;
}

@inline function entry(slice: usize, index: u32): u32 {
  return load<u32>(TABLE + (slice << 10) + (<usize>index << 2));
}

/**
 * Advances a raw CRC-32C state (start with 0xFFFFFFFF, finish by inverting) over `length`
 * bytes at `pointer`. Lets callers checksum a structure in pieces (wrapping logs, zeroed fields).
 */
export function crc32cUpdate(state: u32, pointer: usize, length: usize): u32 {
  if (!tableReady) initTable();
  let crc = state;
  let p = pointer;
  let remaining = length;
  while (remaining >= 8) {
    const low = load<u32>(p) ^ crc;
    const high = load<u32>(p + 4);
    crc =
      entry(7, low & 0xff) ^ entry(6, (low >>> 8) & 0xff) ^ entry(5, (low >>> 16) & 0xff) ^ entry(4, low >>> 24) ^
      entry(3, high & 0xff) ^ entry(2, (high >>> 8) & 0xff) ^ entry(1, (high >>> 16) & 0xff) ^ entry(0, high >>> 24);
    p += 8;
    remaining -= 8;
  }
  while (remaining > 0) {
    crc = (crc >>> 8) ^ entry(0, (crc ^ load<u8>(p)) & 0xff);
    p++;
    remaining--;
  }
  return crc;
}

/** Advances a raw CRC-32C state over `count` zero bytes. */
export function crc32cZeros(state: u32, count: usize): u32 {
  if (!tableReady) initTable();
  let crc = state;
  for (let i: usize = 0; i < count; i++) crc = (crc >>> 8) ^ entry(0, crc & 0xff);
  return crc;
}

/** CRC-32C of `length` bytes at `pointer` (the standard check value of "123456789" is 0xE3069283). */
export function vhdxCrc32c(pointer: usize, length: usize): u32 {
  return ~crc32cUpdate(0xffffffff, pointer, length);
}

/**
 * CRC-32C of a structure whose own 4-byte checksum field at `fieldOffset` counts as zero
 * (how VHDX headers, region tables and log entries are checksummed). Memory is not modified.
 */
export function crc32cWithZeroedField(pointer: usize, length: usize, fieldOffset: usize): u32 {
  let crc = crc32cUpdate(0xffffffff, pointer, fieldOffset);
  crc = crc32cZeros(crc, 4);
  crc = crc32cUpdate(crc, pointer + fieldOffset + 4, length - fieldOffset - 4);
  return ~crc;
}
