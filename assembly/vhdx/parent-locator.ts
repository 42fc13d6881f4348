// VHDX parent locator item ([MS-VHDX] 2.6.2.6): header, key/value table, and the keys of the
// VHDX locator type. Keys and values are UTF-16LE; the TS side decodes the values it needs.
//
// Item: 0 LocatorType GUID | 16 Reserved u16 | 18 KeyValueCount u16 | 20 entries of 12 bytes:
//   0 KeyOffset u32 | 4 ValueOffset u32 | 8 KeyLength u16 | 10 ValueLength u16 (offsets in the item)
//
// Output (VHDX_LOCATOR_OUT_BYTES): for each known key, in this order — parent_linkage,
//   parent_linkage2, relative_path, volume_path, absolute_win32_path — the value's offset u32
//   and length u32 in bytes within the item (length 0 = key absent).

import { STATUS_OK, STATUS_VHDX_LOCATOR_CORRUPT, STATUS_VHDX_LOCATOR_UNSUPPORTED } from "../status";
import { GUID_VHDX_LOCATOR_TYPE, guidEquals } from "./layout";

export const VHDX_LOCATOR_OUT_BYTES: usize = 40;
const KEY_COUNT: i32 = 5;
// Known keys as ASCII, NUL-separated, in output order.
const KEYS: usize = memory.data<u8>([
  0x70, 0x61, 0x72, 0x65, 0x6e, 0x74, 0x5f, 0x6c, 0x69, 0x6e, 0x6b, 0x61, 0x67, 0x65, 0, // parent_linkage
  0x70, 0x61, 0x72, 0x65, 0x6e, 0x74, 0x5f, 0x6c, 0x69, 0x6e, 0x6b, 0x61, 0x67, 0x65, 0x32, 0, // parent_linkage2
  0x72, 0x65, 0x6c, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f, 0x70, 0x61, 0x74, 0x68, 0, // relative_path
  0x76, 0x6f, 0x6c, 0x75, 0x6d, 0x65, 0x5f, 0x70, 0x61, 0x74, 0x68, 0, // volume_path
  0x61, 0x62, 0x73, 0x6f, 0x6c, 0x75, 0x74, 0x65, 0x5f, 0x77, 0x69, 0x6e, 0x33, 0x32, 0x5f, 0x70, 0x61, 0x74, 0x68, 0, // absolute_win32_path
]);

/** Index of the known key equal to the UTF-16LE string at `key` (`lengthBytes`), or -1. */
function knownKeyIndex(key: usize, lengthBytes: u32): i32 {
  let ascii = KEYS;
  for (let index = 0; index < KEY_COUNT; index++) {
    let keyLength: u32 = 0;
    while (load<u8>(ascii + keyLength) != 0) keyLength++;
    if (keyLength * 2 == lengthBytes) {
      let same = true;
      for (let i: u32 = 0; i < keyLength && same; i++) same = load<u16>(key + (<usize>i << 1)) == <u16>load<u8>(ascii + i);
      if (same) return index;
    }
    ascii += keyLength + 1;
  }
  return -1;
}

/**
 * Parses a parent locator item of `length` bytes at `item`.
 * Status: OK, VHDX_LOCATOR_CORRUPT (bounds, duplicate keys, no parent_linkage),
 * VHDX_LOCATOR_UNSUPPORTED (locator type is not VHDX).
 */
export function vhdxParseParentLocator(item: usize, length: u32, outPointer: usize): i32 {
  memory.fill(outPointer, 0, VHDX_LOCATOR_OUT_BYTES);
  if (length < 20) return STATUS_VHDX_LOCATOR_CORRUPT;
  if (!guidEquals(item, GUID_VHDX_LOCATOR_TYPE)) return STATUS_VHDX_LOCATOR_UNSUPPORTED;
  const count = <u32>load<u16>(item + 18);
  if (20 + <u64>count * 12 > <u64>length) return STATUS_VHDX_LOCATOR_CORRUPT;
  for (let i: u32 = 0; i < count; i++) {
    const entry = item + 20 + <usize>i * 12;
    const keyOffset = load<u32>(entry);
    const valueOffset = load<u32>(entry + 4);
    const keyLength = <u32>load<u16>(entry + 8);
    const valueLength = <u32>load<u16>(entry + 10);
    if (keyOffset == 0 || valueOffset == 0 || keyLength == 0 || valueLength == 0) return STATUS_VHDX_LOCATOR_CORRUPT;
    if ((keyLength & 1) != 0 || (valueLength & 1) != 0) return STATUS_VHDX_LOCATOR_CORRUPT;
    if (<u64>keyOffset + <u64>keyLength > <u64>length || <u64>valueOffset + <u64>valueLength > <u64>length) return STATUS_VHDX_LOCATOR_CORRUPT;
    const index = knownKeyIndex(item + keyOffset, keyLength);
    if (index < 0) continue;
    const slot = outPointer + (<usize>index << 3);
    if (load<u32>(slot + 4) != 0) return STATUS_VHDX_LOCATOR_CORRUPT;
    store<u32>(slot, valueOffset);
    store<u32>(slot + 4, valueLength);
  }
  return load<u32>(outPointer + 4) == 0 ? STATUS_VHDX_LOCATOR_CORRUPT : STATUS_OK;
}
