// Standard output of the CLI. process.stdout is a stream whose creation loads Node's stream
// modules (and net, for a pipe): ~2–2.5 ms of a fresh process, for a command that prints one
// report. Text goes to descriptor 1 with plain writes until one cannot be made at once (a
// non-blocking pipe that is full: EAGAIN); from then on all of it goes through process.stdout,
// so nothing is reordered.
//
// A reader that goes away (EPIPE) is not an error of ours. Commands that print as they work and
// have no status beyond it (hash's per-block lines, log extents) call stopWhenReaderGoes(): the
// run ends there, quietly, with status 0. Every other command finishes its work (a resync must
// not stop half done because `--json --progress` was piped into a reader that quit; diff and
// verify owe their status, 1 when the images differ) and exits with its own status; what it
// would still have printed is dropped.

import { writeSync } from "node:fs";

const STDOUT = 1;
let throughStream = false;
let readerGone = false;
let stopWhenGone = false;

/** Ends the run, quietly, as soon as stdout's reader goes away (see above). */
export function stopWhenReaderGoes(): void {
  stopWhenGone = true;
}

function readerWentAway(): void {
  readerGone = true;
  if (stopWhenGone) process.exit(process.exitCode ?? 0);
}

/** Writes `text` to stdout; what a full non-blocking pipe refuses is queued on process.stdout. */
export function writeOut(text: string): void {
  if (readerGone) return;
  if (throughStream) {
    process.stdout.write(text);
    return;
  }
  const bytes = Buffer.from(text, "utf8");
  let at = 0;
  while (at < bytes.length) {
    try {
      at += writeSync(STDOUT, bytes, at, bytes.length - at);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EINTR") continue;
      if (code === "EPIPE") return readerWentAway();
      if (code !== "EAGAIN") throw error;
      throughStream = true;
      process.stdout.write(bytes.subarray(at));
      return;
    }
  }
}

/**
 * writeOut(), waiting while process.stdout's buffer is full once output goes through it:
 * streamed output (`log extents --json` of 1M extents piped) must not queue in memory faster
 * than the reader takes it (386 MB of RSS once). Plain writes wait in the kernel by themselves.
 */
export async function writeOutPaced(text: string): Promise<void> {
  writeOut(text);
  if (!throughStream || readerGone || !process.stdout.writableNeedDrain) return;
  // A reader that goes away meanwhile closes the stream instead: no 'drain' then.
  await new Promise<void>((resolve) => {
    const done = () => {
      process.stdout.off("drain", done);
      process.stdout.off("close", done);
      resolve();
    };
    process.stdout.once("drain", done);
    process.stdout.once("close", done);
  });
}

/**
 * Handles a reader that goes away while output waits on process.stdout (EPIPE as an 'error'
 * event) as writeOut does. The handler is added to process.stdout when something creates it
 * (yargs' help, the fallback above), not before.
 */
export function quietOnClosedStdout(): void {
  whenMade("stdout", (stream) => stream.on("error", onStreamError));
}

/**
 * A reader of stderr that goes away: what is left to say there is dropped, and the command
 * exits with its own status (an unhandled EPIPE made it 1).
 */
export function quietOnClosedStderr(): void {
  whenMade("stderr", (stream) =>
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE" && error.code !== "ERR_STREAM_DESTROYED") throw error;
    }),
  );
}

/** process.stdout and process.stderr, once made. */
const madeStreams = new Set<NodeJS.WriteStream>();

/** Runs `made` on process[name] when something first makes it (the getter is wrapped), not before. */
function whenMade(name: "stdout" | "stderr", made: (stream: NodeJS.WriteStream) => void): void {
  const descriptor = Object.getOwnPropertyDescriptor(process, name);
  const create = descriptor?.get;
  if (!create || !descriptor.configurable) {
    madeStreams.add(process[name]);
    made(process[name]);
    return;
  }
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: descriptor.enumerable,
    get() {
      const stream = create.call(process) as NodeJS.WriteStream;
      Object.defineProperty(process, name, { configurable: true, enumerable: descriptor.enumerable, get: () => stream });
      madeStreams.add(stream);
      made(stream);
      return stream;
    },
  });
}

/**
 * Resolves once what waits in process.stdout's and process.stderr's buffers (text a full
 * non-blocking pipe refused) is written, or their reader is gone; at once when nothing waits,
 * as is usual (plain writes, and Node writes a pipe it has made blocking). The CLI then exits
 * with process.exit(), which drops what is still queued.
 */
export function outputWritten(): Promise<void> {
  const pending = [...madeStreams].filter((stream) => stream.writableLength > 0 && !stream.destroyed);
  return Promise.all(
    pending.map(
      (stream) =>
        new Promise<void>((resolve) => {
          stream.once("close", () => resolve());
          // An empty write's callback runs once everything queued before it is written (or failed).
          stream.write("", () => resolve());
        }),
    ),
  ).then(() => undefined);
}

function onStreamError(error: NodeJS.ErrnoException): void {
  if (error.code !== "EPIPE") throw error;
  readerWentAway();
}
