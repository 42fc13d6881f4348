// `vhdsync snapshot create|list|revert|delete|merge|resume DISK`: checkpoints of VHD disks as
// differencing chains (docs/snapshots.md). A thin shell over src/snapshot.

import { resolve } from "node:path";
import type { Argv, CommandModule } from "yargs";
import { createSnapshot, deleteSnapshot, listSnapshots, mergeSnapshots, resumeSnapshotOperation, revertSnapshot } from "../../snapshot/index.js";
import type { SnapshotListing } from "../../snapshot/index.js";
import { formatBytes } from "../progress.js";
import { EXIT, printJson, printReport, runCommand, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";
import { withProgress } from "../interrupt.js";

interface SnapshotArgs extends GlobalOptions {
  disk: string;
  snapshot?: string;
  name?: string;
  into?: string;
}

function printListing(listing: SnapshotListing): void {
  const rows = listing.layers.map((layer) => [
    layer.kind === "active" ? "active" : layer.kind === "external" ? "external" : layer.id ?? "",
    layer.name ?? "",
    layer.createdAt ?? "",
    layer.type,
    formatBytes(layer.allocatedBytes),
    formatBytes(layer.fileSizeBytes),
    layer.onActiveChain ? "" : `branch of ${layer.parentId ?? layer.parentPath ?? "-"}`,
    layer.path,
  ]);
  const header = ["ID", "NAME", "CREATED", "TYPE", "DATA", "FILE", "", "PATH"];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  for (const row of [header, ...rows]) writeOut(row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd() + "\n");
  if (listing.pending) writeOut(`pending: ${listing.pending.op} at step ${listing.pending.step} (run vhdsync snapshot resume)\n`);
}

const disk = (yargs: Argv<GlobalOptions>) => yargs.positional("disk", { type: "string", demandOption: true, describe: "the active disk (a VHD)" });
const snapshot = (yargs: Argv<GlobalOptions>) => disk(yargs).positional("snapshot", { type: "string", demandOption: true, describe: "snapshot id or name" });
const progressOption = { type: "boolean", describe: "progress bar / JSON progress lines" } as const;

const subcommands: CommandModule<GlobalOptions, SnapshotArgs>[] = [
  {
    command: "create <disk>",
    describe: "Freeze the disk's content as a snapshot; the disk's path stays the writable disk",
    builder: (yargs) => disk(yargs).option("name", { type: "string", describe: "a name for the snapshot" }) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const result = await createSnapshot(argv.disk, { name: argv.name });
        if (argv.json) printJson({ ok: true, ...result });
        else writeOut(`Snapshot ${result.snapshot.id}${result.snapshot.name ? ` (${result.snapshot.name})` : ""} created: ${result.snapshot.layer}\n`);
        return EXIT.OK;
      }),
  },
  {
    command: "list <disk>",
    describe: "List the chain from the base to the active disk, with snapshots and sizes",
    builder: (yargs) => disk(yargs) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const listing = await listSnapshots(argv.disk);
        if (argv.json) printJson({ ok: true, ...listing });
        else printListing(listing);
        return EXIT.OK;
      }),
  },
  {
    command: "revert <disk> <snapshot>",
    describe: "Discard what was written since SNAPSHOT (other snapshots are kept)",
    builder: (yargs) => snapshot(yargs) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const result = await revertSnapshot(argv.disk, argv.snapshot!);
        if (argv.json) printJson({ ok: true, ...result });
        else writeOut(`Reverted ${result.disk} to snapshot ${result.snapshot.id}.\n`);
        return EXIT.OK;
      }),
  },
  {
    command: "delete <disk> <snapshot>",
    describe: "Remove a snapshot; what every other snapshot and the disk read is unchanged",
    builder: (yargs) => snapshot(yargs).option("progress", progressOption) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const result = await withProgress(argv, "delete", (tuning) => deleteSnapshot(argv.disk, argv.snapshot!, tuning));
        if (argv.json) printReport(result);
        else writeOut(`Snapshot ${result.deleted} deleted.\n`);
        return EXIT.OK;
      }),
  },
  {
    command: "merge <disk>",
    describe: "Coalesce the active disk into its parent snapshot (or --into an older one)",
    builder: (yargs) => disk(yargs).option("into", { type: "string", describe: "snapshot id or name to merge into" }).option("progress", progressOption) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const result = await withProgress(argv, "merge", (tuning) => mergeSnapshots(argv.disk, { into: argv.into, ...tuning }));
        if (argv.json) printReport(result);
        else writeOut(`Merged into ${result.disk}; snapshots consumed: ${result.merged.join(", ")}\n`);
        return EXIT.OK;
      }),
  },
  {
    command: "resume <disk>",
    describe: "Finish a snapshot operation interrupted by a crash",
    builder: (yargs) => disk(yargs).option("progress", progressOption) as Argv<SnapshotArgs>,
    handler: (argv) =>
      runCommand(argv, async () => {
        const state = await withProgress(argv, "resume", (tuning) => resumeSnapshotOperation(argv.disk, tuning));
        const resumed = state ? { op: state.op, step: state.step } : null;
        if (argv.json) printJson({ ok: true, disk: resolve(argv.disk), resumed });
        else writeOut(resumed ? `Finished the pending ${resumed.op} (it had reached step ${resumed.step}).\n` : "Nothing to resume.\n");
        return EXIT.OK;
      }),
  },
];

export const snapshotCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: "snapshot",
  describe: "Snapshots of VHD disks as differencing chains: create, list, revert, delete, merge, resume",
  builder: (yargs) => yargs.command(subcommands as CommandModule<GlobalOptions, GlobalOptions>[]).demandCommand(1, "name a snapshot command: create, list, revert, delete, merge or resume"),
  handler: () => {},
};
