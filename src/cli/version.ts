// `vhdsync --version [--json]`: the version and which optional features are active.

import { readFileSync } from "node:fs";
import { nativeStatus } from "../io/native.js";
import { selectedVariant } from "../wasm/driver.js";

/** The package version from package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** What `--version --json` prints: version, WASM build, runtime, native addon status and features. */
export function versionReport(): Record<string, unknown> {
  return {
    version: packageVersion(),
    node: process.version,
    wasm: selectedVariant(),
    native: nativeStatus(),
  };
}
