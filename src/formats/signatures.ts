// The byte signatures of the built-in formats, without their modules: openImage() can tell a
// raw image from a VHD or VHDX without loading ~20 format modules (about 70 ms of start-up).

const VHD_COOKIE = [0x63, 0x6f, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x78]; // "conectix"
const VHDX_IDENTIFIER = [0x76, 0x68, 0x64, 0x78, 0x66, 0x69, 0x6c, 0x65]; // "vhdxfile"

/** Whether `bytes` starts with `signature`. */
export function startsWith(bytes: Uint8Array, signature: readonly number[]): boolean {
  return bytes.length >= signature.length && signature.every((byte, i) => bytes[i] === byte);
}

/** The bytes of an ASCII signature. */
export function signatureOf(text: string): number[] {
  return [...text].map((char) => char.charCodeAt(0));
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
export const DIGEST_SIGNATURE = signatureOf(DIGEST_MAGIC);

/** VHD footer disk types (big-endian u32 at offset 60 of the footer). */
const VHD_FIXED = 2;
const VHD_DYNAMIC = 3;
const VHD_DIFFERENCING = 4;

/** What the signatures say an image keeps its virtual disk as (a guess: the CLI's prewarm decides with it). */
export type ImageLayout = "raw" | "vhd-fixed" | "vhd-dynamic" | "vhd-differencing" | "vhdx" | "other";

/**
 * How a file with these first bytes / last 512 bytes keeps its virtual disk: as plain bytes at
 * its start ("raw", "vhd-fixed"), as runs of the file, one per allocated block ("vhd-dynamic";
 * "vhdx" mostly, unless it has a parent or a dirty log, which its signature does not tell), in
 * its blocks' sectors and its parents' ("vhd-differencing"), or otherwise ("other": a digest
 * file, a VHD whose footer and header disagree).
 */
export function imageLayout(head: Uint8Array, tail: Uint8Array): ImageLayout {
  if (isVhdx(head)) return "vhdx";
  if (startsWith(head, DIGEST_SIGNATURE)) return "other";
  if (!detectVhd(head, tail)) return "raw";
  const footer = tail.length === 512 && startsWith(tail, VHD_COOKIE) ? tail : tail.subarray(1);
  if (!startsWith(footer, VHD_COOKIE) || footer.length < 64) return "other";
  const type = new DataView(footer.buffer, footer.byteOffset).getUint32(60);
  if (type === VHD_FIXED && !startsWith(head, VHD_COOKIE)) return "vhd-fixed";
  if (!startsWith(head, VHD_COOKIE)) return "other";
  return type === VHD_DYNAMIC ? "vhd-dynamic" : type === VHD_DIFFERENCING ? "vhd-differencing" : "other";
}
