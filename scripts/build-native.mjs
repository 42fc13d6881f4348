// Builds the optional native addon (native/, Rust, no crate dependencies) with
// `napi build --release`, offline, into native/vhdsync-native.<platform>.node (name from
// native/package.json). Without cargo, or when the build fails and VHDSYNC_REQUIRE_NATIVE is not
// set, vhdsync runs on its portable fallbacks (see docs/native.md).
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
if (process.platform !== "linux") done(`not built on ${process.platform} (Linux only); portable fallbacks in use`, false);
if (spawnSync("cargo", ["--version"]).status !== 0) done("cargo not found, skipped (portable fallbacks in use)", false);
// @napi-rs/cli v2: run in native/ (its package.json names the addon); output lands in native/.
const napi = spawnSync(
  "npx",
  ["napi", "build", "--release", "--platform", "--js", "false", "."],
  { cwd: `${root}/native`, stdio: "inherit", env: { ...process.env, CARGO_NET_OFFLINE: "true" } },
);
if (napi.status !== 0) done(`napi build failed (status ${napi.status}); portable fallbacks in use`, false);
done("built", true);
