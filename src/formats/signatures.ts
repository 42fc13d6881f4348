// The byte signatures of the built-in formats, without their modules: openImage() can tell a
// raw image from a VHD or VHDX without loading ~20 format modules (about 70 ms of start-up).

const VHD_COOKIE = [0x63, 0x6f, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x78]; // "conectix"
const VHDX_IDENTIFIER = [0x76, 0x68, 0x64, 0x78, 0x66, 0x69, 0x6c, 0x65]; // "vhdxfile"

function startsWith(bytes: Uint8Array, signature: number[]): boolean {
  return bytes.length >= signature.length && signature.every((byte, i) => bytes[i] === byte);
}

/** Whether the first bytes / last 512 bytes of a file look like a VHD (512- or 511-byte footer, or the copy at 0). */
export function detectVhd(head: Uint8Array, tail: Uint8Array): boolean {
  return (tail.length === 512 && (startsWith(tail, VHD_COOKIE) || startsWith(tail.subarray(1), VHD_COOKIE))) || startsWith(head, VHD_COOKIE);
}

/** True if `head` (the file's first bytes) starts with the VHDX file type identifier ([MS-VHDX] 2.2.1). */
export function isVhdx(head: Uint8Array): boolean {
  return startsWith(head, VHDX_IDENTIFIER);
}

/** The first bytes of a vhdsync digest file (docs/digest-format.md). */
export const DIGEST_MAGIC = "VHDSDIGS";
const DIGEST_SIGNATURE = [...DIGEST_MAGIC].map((char) => char.charCodeAt(0));

/** VHD footer disk type of a fixed disk (big-endian u32 at offset 60 of the footer). */
const VHD_FIXED = 2;

/**
 * Whether a file with these first bytes / last 512 bytes keeps its virtual disk as plain
 * bytes at its start: a raw image or a fixed VHD, not a dynamic or differencing VHD, a VHDX
 * or a digest file. A guess from signatures only (the CLI's prewarm decides with it).
 */
export function isFlatImage(head: Uint8Array, tail: Uint8Array): boolean {
  if (isVhdx(head) || startsWith(head, DIGEST_SIGNATURE)) return false;
  if (!detectVhd(head, tail)) return true;
  const footer = tail.length === 512 && startsWith(tail, VHD_COOKIE) ? tail : tail.subarray(1);
  return !startsWith(head, VHD_COOKIE) && startsWith(footer, VHD_COOKIE) && footer.length >= 64 && new DataView(footer.buffer, footer.byteOffset).getUint32(60) === VHD_FIXED;
}
