// Where an image's virtual disk lies in its own file, for scanners that map the file's pages
// directly (src/sync/native-scanner.ts): flat images (raw files, block devices, fixed VHDs:
// the virtual disk is the file's first bytes), dynamic VHDs (each allocated block's data is
// one run of the file, after its sector bitmap; unallocated blocks read as zeros) and VHDX
// files without a parent, a dirty log or partially present blocks (fully present blocks are
// runs, other states zeros). Differencing VHDs and VHDX files with a parent or partially
// present blocks have no locator, but say where each piece of their disk lies in their own
// file or their parents' (filePiecesOf). VHDX files whose log is replayed in memory have
// neither (some of their bytes lie in no file) and are read through DiskImage.read.

import type { DiskImage } from "./disk-image.js";
import { flatDataOf } from "./flat-file.js";
import type { GatherPiece } from "../io/native-compare.js";

/** A piece of the virtual disk and where its bytes are. */
export interface DataPiece {
  offset: number;
  length: number;
  /** File offset of the piece's first byte, or null where the piece reads as zeros. */
  fileOffset: number | null;
}

/** Finds the file bytes of an image's virtual disk. */
export interface DataLocator {
  /** Descriptor of the file holding the data (the image's own; valid while it is open). */
  readonly fd: number;
  /** Pieces never cross a multiple of this power of two (the format's block size). */
  readonly granuleBytes: number;
  /**
   * Set when every byte of the disk lies at its own offset plus this in the file (flat images:
   * 0): locate() then always answers one piece, and callers may skip it.
   */
  readonly shift?: number;
  /** [offset, offset+length) as pieces, in order, covering it. The range must lie inside the disk. */
  locate(offset: number, length: number): DataPiece[];
}

/** Images that know where their data lies in their file. */
export interface LocatableImage {
  /** A locator, or undefined when the image's content is not its file's bytes alone (e.g. a parent fills gaps). */
  dataLocator(): DataLocator | undefined;
}

/** Granule of flat images: a power of two above any disk size (2^52 bytes). */
const FLAT_GRANULE_BYTES = 2 ** 52;

/** The locator of `image`'s data, or undefined when its data must go through DiskImage.read. */
export function dataLocatorOf(image: DiskImage): DataLocator | undefined {
  const flat = flatDataOf(image);
  if (flat) return { fd: flat.handle.fd, granuleBytes: FLAT_GRANULE_BYTES, shift: 0, locate: (offset, length) => [{ offset, length, fileOffset: offset }] };
  const locatable = image as Partial<LocatableImage>;
  return typeof locatable.dataLocator === "function" ? locatable.dataLocator() : undefined;
}

/** A piece of the virtual disk in one of several files (its descriptor valid while the image is open; unused where fileOffset is null). */
export type FilePiece = GatherPiece;

/** [offset, offset+length) as pieces, in order, covering it. The range must lie inside the disk. */
export type PieceSource = (offset: number, length: number) => Promise<FilePiece[]>;

/** Images whose data may lie in runs of several files (a differencing disk over its parents). */
export interface GatherableImage {
  /** Where the disk's bytes lie, or undefined when some lie in no file (a log replayed in memory, a parent that cannot say). */
  pieceSource(): PieceSource | undefined;
}

/**
 * Where `image`'s bytes lie, piece by piece and file by file: from its locator, or from the
 * image itself (differencing disks); undefined when neither can say (read through DiskImage.read).
 */
export function filePiecesOf(image: DiskImage): PieceSource | undefined {
  const locator = dataLocatorOf(image);
  if (locator) return async (offset, length) => locator.locate(offset, length).map((piece) => ({ ...piece, fd: locator.fd }));
  const gatherable = image as Partial<GatherableImage>;
  return typeof gatherable.pieceSource === "function" ? gatherable.pieceSource() : undefined;
}

/** Appends the pieces of [at, at+bytes) that a layer takes from its parent: the parent's, then zeros past its end. */
export async function appendParentPieces(pieces: FilePiece[], parent: PieceSource, parentSize: number, at: number, bytes: number): Promise<void> {
  const inParent = Math.max(0, Math.min(bytes, parentSize - at));
  if (inParent > 0) for (const piece of await parent(at, inParent)) appendPiece(pieces, piece);
  appendPiece(pieces, { offset: at + inParent, length: bytes - inParent, fd: -1, fileOffset: null });
}

/** `piece` appended to `pieces`, merged into the last one when it continues it (same file, next bytes; or zeros after zeros). */
export function appendPiece(pieces: FilePiece[], piece: FilePiece): void {
  if (piece.length === 0) return;
  const last = pieces[pieces.length - 1];
  const continues =
    last !== undefined &&
    last.offset + last.length === piece.offset &&
    (last.fileOffset === null ? piece.fileOffset === null : piece.fileOffset !== null && last.fd === piece.fd && last.fileOffset + last.length === piece.fileOffset);
  if (continues) last.length += piece.length;
  else pieces.push({ ...piece });
}
