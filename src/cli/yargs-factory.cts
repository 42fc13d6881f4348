// yargs' CommonJS build (17.x). main.ts imports this module, not "yargs/yargs": an ES module
// import would pick yargs' ES module build, whose graph loads far slower, and through this
// file esbuild bundles the CommonJS build (and its dependencies) into the CLI bundle, where
// the code cache covers it too.
import yargs = require("yargs/yargs");
export = yargs;
