// CHS geometry of a VHD (VHD spec 1.0, appendix "CHS Calculation") and the rule that picks a
// disk's virtual size from its footer (current size or CHS size, as qemu's vpc driver does;
// documented in docs/vhd.md).

/** Largest geometry the footer can hold: 65535 cylinders x 16 heads x 255 sectors. */
export const VHD_MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;

/**
 * CHS geometry for a disk of `sizeBytes` by the spec's algorithm (rounds down).
 * Returns (cylinders << 16) | (heads << 8) | sectorsPerTrack.
 */
export function vhdGeometryForSize(sizeBytes: f64): u32 {
  let totalSectors: u64 = <u64>(sizeBytes / 512);
  if (totalSectors > VHD_MAX_CHS_SECTORS) totalSectors = VHD_MAX_CHS_SECTORS;
  let sectorsPerTrack: u64;
  let heads: u64;
  let cylinderTimesHeads: u64;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = totalSectors / sectorsPerTrack;
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = totalSectors / sectorsPerTrack;
    heads = (cylinderTimesHeads + 1023) / 1024;
    if (heads < 4) heads = 4;
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = totalSectors / sectorsPerTrack;
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = totalSectors / sectorsPerTrack;
    }
  }
  const cylinders = cylinderTimesHeads / heads;
  return (<u32>cylinders << 16) | (<u32>heads << 8) | <u32>sectorsPerTrack;
}

/** Creator applications whose current-size field is authoritative: "win ", "qem2", "d2v ", "CTXS", "tap\0". */
function creatorUsesCurrentSize(creator: u32): bool {
  return creator == 0x77696e20 || creator == 0x71656d32 || creator == 0x64327620 || creator == 0x43545853 || creator == 0x74617000;
}

/**
 * Virtual size in bytes: the footer's current size for the creators listed above or when the
 * geometry is at its maximum; otherwise cylinders x heads x sectors x 512 (what Virtual PC
 * and old qemu versions expose).
 */
export function virtualSizeFromFooter(creator: u32, currentSizeBytes: u64, cylinders: u32, heads: u32, sectorsPerTrack: u32): u64 {
  const chsSectors = <u64>cylinders * <u64>heads * <u64>sectorsPerTrack;
  if (creatorUsesCurrentSize(creator) || chsSectors == VHD_MAX_CHS_SECTORS) return currentSizeBytes;
  return chsSectors * 512;
}
