// What yargs' CommonJS build uses of node:assert, for the CLI bundle: scripts/build-bundle.mjs
// resolves yargs' require("assert") to this module. Loading node:assert costs ~1.5–3.5 ms of
// every run's start-up (it brings Node's assertion-error and comparison modules), and yargs
// only calls these two, to check its own state. Same comparison as node:assert (Object.is),
// same error code.

/** An assertion that failed (code ERR_ASSERTION, as node:assert's AssertionError). */
export class AssertionError extends Error {
  readonly code = "ERR_ASSERTION";
  constructor(
    message: string,
    readonly actual: unknown,
    readonly expected: unknown,
    readonly operator: string,
  ) {
    super(message);
    this.name = "AssertionError";
  }
}

/** Throws unless `actual` and `expected` are the same value (Object.is). */
export function strictEqual(actual: unknown, expected: unknown, message?: string | Error): void {
  if (!Object.is(actual, expected)) fail(actual, expected, "strictEqual", message, "Expected values to be strictly equal");
}

/** Throws when `actual` and `expected` are the same value (Object.is). */
export function notStrictEqual(actual: unknown, expected: unknown, message?: string | Error): void {
  if (Object.is(actual, expected)) fail(actual, expected, "notStrictEqual", message, "Expected values to be not strictly equal");
}

function fail(actual: unknown, expected: unknown, operator: string, message: string | Error | undefined, fallback: string): never {
  if (message instanceof Error) throw message;
  throw new AssertionError(message ?? `${fallback}: ${String(actual)} ${operator === "strictEqual" ? "!==" : "==="} ${String(expected)}`, actual, expected, operator);
}
