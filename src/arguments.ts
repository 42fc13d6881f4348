// Checks of the library's arguments at its entry points, before anything is opened or written:
// a value of the wrong type is VHDSYNC_INVALID_ARGUMENT (not a TypeError from deep inside, nor
// VHDSYNC_INTERNAL, which means a bug in vhdsync).

import { VhdsyncError } from "./errors.js";

function invalid(message: string, details: Record<string, unknown>): VhdsyncError {
  return new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", message, details);
}

/** Names a value in a message without printing a whole object. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  return `${typeof value} ${String(value)}`;
}

/** Checks that `value` is a path: a non-empty string without NUL bytes. @throws VHDSYNC_INVALID_ARGUMENT */
export function checkPath(value: unknown, name: string): asserts value is string {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw invalid(`${name} must be a path (a non-empty string), got ${describe(value)}`, { argument: name });
  }
}

/**
 * Checks that `value` looks like an open image (a DiskImage: a path, read() and close()).
 * `orPath`: the caller also takes a path (and has checked that it is not one).
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkImage(value: unknown, name: string, orPath = false): void {
  const image = value as { path?: unknown; read?: unknown; close?: unknown } | null;
  if (image === null || typeof image !== "object" || typeof image.path !== "string" || typeof image.read !== "function" || typeof image.close !== "function") {
    throw invalid(`${name} must be ${orPath ? "a path or " : ""}an open image, got ${describe(value)}`, { argument: name });
  }
}

/** The options every long operation shares: a progress listener and an abort signal. */
export interface CommonOptions {
  onProgress?: unknown;
  signal?: unknown;
}

/**
 * Checks an options argument: undefined or an object, whose `onProgress` (when given) is a
 * function and whose `signal` is an AbortSignal. @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkOptions(options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) throw invalid(`options must be an object, got ${describe(options)}`, { argument: "options" });
  const { onProgress, signal } = options as CommonOptions;
  checkFunction(onProgress, "onProgress");
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalid(`signal must be an AbortSignal, got ${describe(signal)}`, { argument: "signal" });
  }
}

/** Checks an optional point in time: a valid Date when given. @throws VHDSYNC_INVALID_ARGUMENT */
export function checkDate(value: unknown, name: string): void {
  if (value !== undefined && !(value instanceof Date && Number.isFinite(value.getTime()))) throw invalid(`${name} must be a valid Date, got ${describe(value)}`, { argument: name });
}

/** Checks an optional callback: a function when given. @throws VHDSYNC_INVALID_ARGUMENT */
export function checkFunction(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== "function") throw invalid(`${name} must be a function, got ${describe(value)}`, { argument: name });
}

/** Checks an optional count: a non-negative safe integer. @throws VHDSYNC_INVALID_ARGUMENT */
export function checkCount(value: unknown, name: string): void {
  if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)) {
    throw invalid(`${name} must be a non-negative integer, got ${describe(value)}`, { argument: name });
  }
}

/** Checks that `value` is a non-empty string (a name, an id). @throws VHDSYNC_INVALID_ARGUMENT */
export function checkText(value: unknown, name: string): asserts value is string {
  if (typeof value !== "string" || value === "") throw invalid(`${name} must be a non-empty string, got ${describe(value)}`, { argument: name });
}

/** Checks that `value` is one of `choices` (a kind, a mode). @throws VHDSYNC_INVALID_ARGUMENT */
export function checkChoice<T>(value: unknown, name: string, choices: readonly T[]): asserts value is T {
  if (!choices.includes(value as T)) throw invalid(`${name} must be one of ${choices.join(", ")}, got ${describe(value)}`, { argument: name });
}

/** Checks that each named option, when given, is a boolean (a string "false" would be truthy). @throws VHDSYNC_INVALID_ARGUMENT */
export function checkFlags(options: object | undefined, names: readonly string[]): void {
  for (const name of names) {
    const value = (options as Record<string, unknown> | undefined)?.[name];
    if (value !== undefined && typeof value !== "boolean") throw invalid(`${name} must be true or false, got ${describe(value)}`, { argument: name });
  }
}

/** Checks that a required options argument is an object (then as checkOptions). @throws VHDSYNC_INVALID_ARGUMENT */
export function checkRequiredOptions(options: unknown): void {
  if (options === undefined) throw invalid("options are required", { argument: "options" });
  checkOptions(options);
}
