// Finding a differencing disk's parent (VHD spec 1.0, "Implementing a Differencing Hard
// Disk", "Identification of the Parent Hard Disk Image"): the parent locators give paths —
// W2ru relative and W2ku absolute (UTF-16LE), MacX a file URL (UTF-8) — and the header's
// parent Unicode name (UTF-16BE) is the last resort. Candidates are tried in that order.

import type { FileHandle } from "node:fs/promises";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readExactly } from "../../io/file.js";
import type { VhdHeader } from "./vhd-structures.js";

/** A parent locator's decoded content. */
export interface DecodedLocator {
  platformCode: string;
  /** The stored text (path or URL). */
  text: string;
  /** The local path it designates, if any. */
  path?: string;
}

/** Where a candidate parent path came from. */
export interface ParentCandidate {
  path: string;
  source: string;
}

/** Reads and decodes the W2ru, W2ku and MacX locators of a differencing disk (others are listed without a path). */
export async function readLocators(handle: FileHandle, header: VhdHeader, childPath: string): Promise<DecodedLocator[]> {
  const decoded: DecodedLocator[] = [];
  for (const locator of header.locators) {
    if (!locator.platformCode || locator.dataLengthBytes === 0) continue;
    const data = new Uint8Array(locator.dataLengthBytes);
    await readExactly(handle, data, locator.dataOffsetBytes, childPath);
    const code = locator.platformCode;
    const text = code === "MacX" ? Buffer.from(data).toString("utf8") : code.startsWith("W2") ? Buffer.from(data).toString("utf16le") : "";
    const clean = text.replace(/\0+$/, "");
    decoded.push({ platformCode: code, text: clean, path: locatorPath(childPath, code, clean) });
  }
  return decoded;
}

/** The local path a locator designates, or undefined (e.g. a Windows drive path). */
export function locatorPath(childPath: string, platformCode: string, text: string): string | undefined {
  if (!text) return undefined;
  if (platformCode === "W2ru") {
    if (/^[A-Za-z]:/.test(text) || text.startsWith("\\\\")) return undefined;
    return resolve(dirname(childPath), text.replace(/\\/g, "/"));
  }
  if (platformCode === "W2ku") return isAbsolute(text) ? text : undefined;
  if (platformCode === "MacX") {
    try {
      return fileURLToPath(text.replace(/^file:\/\/localhost\//i, "file:///"));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Candidate parent paths in the order to try them, without duplicates. */
export function parentCandidates(childPath: string, header: VhdHeader, locators: DecodedLocator[]): ParentCandidate[] {
  const order = ["W2ru", "W2ku", "MacX"];
  const candidates: ParentCandidate[] = [];
  for (const code of order) {
    for (const locator of locators) if (locator.platformCode === code && locator.path) candidates.push({ path: locator.path, source: code });
  }
  const name = header.parentName;
  if (name) {
    if (isAbsolute(name)) candidates.push({ path: name, source: "parent name" });
    const leaf = basename(name.replace(/\\/g, "/"));
    if (leaf) candidates.push({ path: resolve(dirname(childPath), leaf), source: "parent name (child's directory)" });
  }
  const seen = new Set<string>();
  return candidates.filter((candidate) => !seen.has(candidate.path) && seen.add(candidate.path));
}
