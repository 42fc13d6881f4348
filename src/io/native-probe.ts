// Probes what a directory's filesystem supports through the native addon (holes reported by
// SEEK_DATA/SEEK_HOLE, hole punching, zero ranges, reflinks, copy_file_range) using two small
// temporary files, for `vhdsync doctor <dir>`. Nothing outside the temporary files is touched.

import { closeSync, ftruncateSync, fstatSync, openSync, statfsSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { toVhdsyncError } from "../errors.js";
import { addonLoadState, nativeAddon, type NativeAddon } from "./native-addon.js";
import { extentsOfPairs } from "./extent-pairs.js";

/** One probed capability. */
export interface ProbeCheck {
  name: "holes" | "punchHole" | "zeroRange" | "reflink" | "copyRange";
  supported: boolean;
  /** What happened (an errno code and message when unsupported). */
  detail: string;
}

/** What `probeFilesystem` found. */
export interface FilesystemProbe {
  directory: string;
  /** Filesystem name from statfs f_type ("ext4", "xfs", "btrfs", "tmpfs", ...), or the hex magic. */
  filesystem: string;
  checks: ProbeCheck[];
}

/** statfs f_type magic numbers of common Linux filesystems. */
const FILESYSTEM_MAGIC: Record<number, string> = {
  0xef53: "ext2/3/4",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x01021994: "tmpfs",
  0x794c7630: "overlayfs",
  0x6969: "nfs",
  0x2fc12fc1: "zfs",
  0xf2f52010: "f2fs",
  0xca451a4e: "bcachefs",
  0x65735546: "fuse",
  0x4d44: "vfat",
  0x5346544e: "ntfs",
};

const PROBE_UNIT_BYTES = 1024 * 1024;

function outcome(name: ProbeCheck["name"], action: () => string): ProbeCheck {
  try {
    return { name, supported: true, detail: action() };
  } catch (error) {
    const code = (error as { code?: string }).code ?? "ERROR";
    return { name, supported: false, detail: `${code}: ${(error as Error).message}` };
  }
}

function runChecks(addon: NativeAddon, fd: number, cloneFd: number): ProbeCheck[] {
  const checks: ProbeCheck[] = [];
  const extents = extentsOfPairs(addon.extents(fd, 0, 4 * PROBE_UNIT_BYTES));
  const holes = extents.length === 1 && extents[0].offset === PROBE_UNIT_BYTES;
  const method = addon.extentsMethod(fd) === "fiemap" ? "FIEMAP" : "SEEK_DATA/SEEK_HOLE";
  checks.push({ name: "holes", supported: holes, detail: `a 4 MiB file with 1 MiB of data at 1 MiB reports extents ${JSON.stringify(extents)} (${method})` });
  checks.push(
    outcome("punchHole", () => {
      const before = fstatSync(fd).blocks;
      addon.punchHole(fd, PROBE_UNIT_BYTES, PROBE_UNIT_BYTES);
      return `allocated 512-byte blocks ${before} → ${fstatSync(fd).blocks}`;
    }),
  );
  checks.push(outcome("zeroRange", () => (addon.zeroRange(fd, 2 * PROBE_UNIT_BYTES, PROBE_UNIT_BYTES), "zeroed 1 MiB")));
  checks.push(outcome("reflink", () => (addon.reflink(fd, cloneFd), "cloned the probe file")));
  checks.push(outcome("copyRange", () => `copied ${addon.copyRange(fd, 0, cloneFd, 0, PROBE_UNIT_BYTES)} bytes in the kernel`));
  return checks;
}

/**
 * Probes the filesystem holding `directory` by creating and removing two temporary files.
 * Without the addon every check reports unsupported with the reason.
 * @throws VHDSYNC_NOT_FOUND, VHDSYNC_ACCESS_DENIED (directory missing or not writable), VHDSYNC_NO_SPACE
 */
export function probeFilesystem(directory: string): FilesystemProbe {
  let filesystem: string;
  try {
    const type = Number(statfsSync(directory).type);
    filesystem = FILESYSTEM_MAGIC[type] ?? `0x${type.toString(16)}`;
  } catch (error) {
    throw toVhdsyncError(error, { path: directory });
  }
  const addon = nativeAddon();
  if (!addon) {
    const detail = `native addon not loaded (${addonLoadState().reason})`;
    const names: ProbeCheck["name"][] = ["holes", "punchHole", "zeroRange", "reflink", "copyRange"];
    return { directory, filesystem, checks: names.map((name) => ({ name, supported: false, detail })) };
  }
  const base = join(directory, `.vhdsync-probe-${process.pid}-${Date.now()}`);
  const fds: number[] = [];
  try {
    const fd = openSync(`${base}.a`, "wx+");
    fds.push(fd);
    const cloneFd = openSync(`${base}.b`, "wx+");
    fds.push(cloneFd);
    ftruncateSync(fd, 4 * PROBE_UNIT_BYTES);
    writeSync(fd, Buffer.alloc(PROBE_UNIT_BYTES, 0xa5), 0, PROBE_UNIT_BYTES, PROBE_UNIT_BYTES);
    return { directory, filesystem, checks: runChecks(addon, fd, cloneFd) };
  } catch (error) {
    throw toVhdsyncError(error, { path: directory });
  } finally {
    for (const fd of fds) closeSync(fd);
    for (const suffix of [".a", ".b"].slice(0, fds.length)) unlinkSync(`${base}${suffix}`);
  }
}
