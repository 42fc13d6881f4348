// Builds the optional native addon (native/, Rust, no crate dependencies) with
// `napi build --release` when cargo is present. Without cargo, or when the build fails and
// VHDSYNC_REQUIRE_NATIVE is not set, vhdsync runs on its portable fallbacks.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const required = Boolean(process.env.VHDSYNC_REQUIRE_NATIVE);

function done(message, ok) {
  console.log(`native addon: ${message}`);
  process.exit(ok || !required ? 0 : 1);
}

if (!existsSync(`${root}/native/Cargo.toml`)) done("no crate under native/, skipped", false);
if (spawnSync("cargo", ["--version"]).status !== 0) done("cargo not found, skipped (portable fallbacks in use)", false);
const napi = spawnSync(
  "npx",
  ["napi", "build", "--release", "--platform", "--manifest-path", "native/Cargo.toml", "--output-dir", "native", "--js", "false", "--dts", "native.d.ts"],
  { cwd: root, stdio: "inherit", env: { ...process.env, CARGO_NET_OFFLINE: "true" } },
);
if (napi.status !== 0) done(`napi build failed (status ${napi.status}); portable fallbacks in use`, false);
done("built", true);
