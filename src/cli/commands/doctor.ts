// `vhdsync doctor [dir]`: which optional native features are active and why (addon loaded or
// not, and the reason), and with a directory, what that directory's filesystem supports
// (holes, hole punching, zero ranges, reflinks, copy_file_range). Informational: exit 0.

import type { CommandModule } from "yargs";
import { nativeStatus, type NativeStatus } from "../../io/native.js";
import { probeFilesystem, type FilesystemProbe } from "../../io/native-probe.js";
import { EXIT, printJson, runCommand, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";

interface DoctorArgs extends GlobalOptions {
  dir?: string;
}

function printStatus(status: NativeStatus): void {
  const version = status.version ? ` (version ${status.version})` : "";
  writeOut(`native addon: ${status.loaded ? "loaded" : "not loaded"}${version}: ${status.reason}\n`);
  for (const feature of status.features) {
    const how = feature.active ? feature.native : `fallback: ${feature.fallback}`;
    writeOut(`  ${feature.name.padEnd(16)} ${feature.active ? "native  " : "portable"}  ${how}\n`);
  }
  writeOut(`libuv pool: ${status.threadPool} threads (UV_THREADPOOL_SIZE)\n`);
  if (status.hashKernels) {
    const sha = status.hashKernels.sha256 ? `, SHA-256 ${status.hashKernels.sha256}` : "";
    writeOut(`hash kernels: XXH3 ${status.hashKernels.xxh3}${sha}\n`);
  }
}

function printProbe(probe: FilesystemProbe): void {
  writeOut(`filesystem of ${probe.directory}: ${probe.filesystem}\n`);
  for (const check of probe.checks) {
    writeOut(`  ${check.name.padEnd(16)} ${check.supported ? "yes" : "no "}  ${check.detail}\n`);
  }
}

export const doctorCommand: CommandModule<GlobalOptions, DoctorArgs> = {
  command: "doctor [dir]",
  describe: "Show which native I/O features are active and why; probe a directory's filesystem",
  builder: (yargs) =>
    yargs.positional("dir", { type: "string", describe: "directory whose filesystem to probe (creates two temporary files)" }),
  handler: (argv) =>
    runCommand(argv, () => {
      const status = nativeStatus();
      if (!argv.json) printStatus(status); // before probing, so it shows even if the probe fails
      const probe = argv.dir ? probeFilesystem(argv.dir) : undefined;
      if (argv.json) printJson({ ok: true, native: status, ...(probe ? { probe } : {}) });
      else if (probe) printProbe(probe);
      return EXIT.OK;
    }),
};
