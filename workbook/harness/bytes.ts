/**
 * Bytes as a learner should see them: quoted, with escapes for what is not
 * printable, so `"\x00\x00\x00\x05hello\r\n"` shows exactly what crossed the wire.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Text is encoded as UTF-8; bytes pass through.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBytes } from "./bytes.ts";
 *
 * assert.deepEqual(toBytes("é\n"), new Uint8Array([0xc3, 0xa9, 0x0a]));
 * const bytes = new Uint8Array([1, 2]);
 * assert.equal(toBytes(bytes), bytes);
 * ```
 */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/**
 * Joins byte arrays into one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes } from "./bytes.ts";
 *
 * const joined = concatBytes([new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])]);
 * assert.deepEqual(joined, new Uint8Array([1, 2, 3]));
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Index of `needle` in `haystack` from `from`, or -1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { indexOfBytes, toBytes } from "./bytes.ts";
 *
 * const data = toBytes("a\r\nb\r\n");
 * assert.equal(indexOfBytes(data, toBytes("\r\n")), 1);
 * assert.equal(indexOfBytes(data, toBytes("\r\n"), 2), 4);
 * assert.equal(indexOfBytes(data, toBytes("\n\n")), -1);
 * ```
 */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Byte equality.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { equalBytes, toBytes } from "./bytes.ts";
 *
 * assert.equal(equalBytes(toBytes("hi"), new Uint8Array([104, 105])), true);
 * assert.equal(equalBytes(toBytes("hi"), toBytes("hi\n")), false);
 * ```
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Offset of the first byte where `a` and `b` differ; `-1` when equal. When
 * one is a prefix of the other, the length of the shorter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstDifference, toBytes } from "./bytes.ts";
 *
 * assert.equal(firstDifference(toBytes("HELLO"), toBytes("HELXO")), 3);
 * assert.equal(firstDifference(toBytes("HELLO"), toBytes("HEL")), 3);
 * assert.equal(firstDifference(toBytes("same"), toBytes("same")), -1);
 * ```
 */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const NAMED: Record<number, string> = {
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x22: '\\"',
  0x5c: "\\\\",
};

/** Length in bytes of the UTF-8 sequence starting at `i`, or 0 when it is not valid UTF-8. */
function utf8Length(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  const need = b >= 0xc2 && b <= 0xdf
    ? 2
    : b >= 0xe0 && b <= 0xef
    ? 3
    : b >= 0xf0 && b <= 0xf4
    ? 4
    : 0;
  if (need === 0 || i + need > bytes.length) return 0;
  for (let k = 1; k < need; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return 0;
  return need;
}

/**
 * Escapes bytes one by one into display pieces: printable ASCII as is, `\n`
 * and friends by name, valid UTF-8 characters as the character, anything
 * else as `\xNN`. Returns one piece per byte offset that starts a piece.
 */
function escapePieces(bytes: Uint8Array): { offset: number; text: string }[] {
  const pieces: { offset: number; text: string }[] = [];
  const decoder = new TextDecoder();
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (NAMED[b]) {
      pieces.push({ offset: i, text: NAMED[b] });
      i++;
    } else if (b >= 0x20 && b < 0x7f) {
      pieces.push({ offset: i, text: String.fromCharCode(b) });
      i++;
    } else {
      const n = b >= 0x80 ? utf8Length(bytes, i) : 0;
      if (n > 0) {
        pieces.push({ offset: i, text: decoder.decode(bytes.subarray(i, i + n)) });
        i += n;
      } else {
        pieces.push({ offset: i, text: `\\x${b.toString(16).padStart(2, "0")}` });
        i++;
      }
    }
  }
  return pieces;
}

/**
 * Renders bytes as a quoted, escaped string; longer than `max` bytes shows the
 * start and `… (N more bytes)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { showBytes } from "./bytes.ts";
 *
 * assert.equal(
 *   showBytes(new Uint8Array([0, 0, 0, 2, 104, 105, 10])),
 *   '"\\x00\\x00\\x00\\x02hi\\n"',
 * );
 * assert.equal(showBytes("héllo"), '"héllo"');
 * assert.equal(showBytes("abcdef", 3), '"abc"… (3 more bytes)');
 * ```
 */
export function showBytes(data: string | Uint8Array, max = 120): string {
  const bytes = toBytes(data);
  const shown = bytes.length > max ? bytes.subarray(0, max) : bytes;
  const text = escapePieces(shown).map((p) => p.text).join("");
  return bytes.length > max ? `"${text}"… (${bytes.length - max} more bytes)` : `"${text}"`;
}

/**
 * Expected and actual bytes on two aligned lines with a caret under the first
 * difference, codecrafters-style.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { showDifference } from "./bytes.ts";
 *
 * assert.equal(
 *   showDifference("HELLO\n", "HELXO\n"),
 *   [
 *     'expected: "HELLO\\n"',
 *     'actual:   "HELXO\\n"',
 *     "              ^ first difference at byte 3",
 *   ].join("\n"),
 * );
 * assert.match(showDifference("HELLO\n", "HEL"), /your bytes end here, after 3 of 6/);
 * ```
 */
export function showDifference(expected: string | Uint8Array, actual: string | Uint8Array): string {
  const e = toBytes(expected);
  const a = toBytes(actual);
  const at = firstDifference(e, a);
  // Show a window around the difference so long payloads stay readable.
  const start = at > 60 ? at - 40 : 0;
  const window = (b: Uint8Array) => b.subarray(start, start + 100);
  const lead = start > 0 ? `…(${start} bytes) ` : "";
  const expectedLine = `expected: ${lead}${showBytes(window(e), 100)}`;
  const actualLine = `actual:   ${lead}${showBytes(window(a), 100)}`;
  if (at < 0) return `${expectedLine}\n${actualLine}`;
  const pieces = escapePieces(window(a));
  const column = pieces.filter((p) => p.offset < at - start).reduce((n, p) => n + p.text.length, 0);
  const what = at >= a.length
    ? `your bytes end here, after ${a.length} of ${e.length} expected bytes`
    : at >= e.length
    ? `${a.length - e.length} more byte(s) than expected from here`
    : `first difference at byte ${at}`;
  return `${expectedLine}\n${actualLine}\n${" ".repeat(10 + lead.length + 1 + column)}^ ${what}`;
}

/**
 * Splits bytes into the chunks a sender writes one by one.
 * - `"whole"`: one write (everything coalesced)
 * - `"bytes"`: one byte per write
 * - `number[]`: these chunk sizes, cycling
 * - `{ seed }`: random split points from a seeded generator (same seed, same split)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitBytes, toBytes } from "./bytes.ts";
 *
 * const sizes = (chunks: Uint8Array[]) => chunks.map((chunk) => chunk.length);
 * assert.deepEqual(sizes(splitBytes(toBytes("hello"), [2])), [2, 2, 1]);
 * assert.deepEqual(sizes(splitBytes(toBytes("hello"), "bytes")), [1, 1, 1, 1, 1]);
 * assert.deepEqual(sizes(splitBytes(toBytes("hello"), "whole")), [5]);
 * const seeded = sizes(splitBytes(toBytes("hello, world"), { seed: 7, maxChunk: 4 }));
 * assert.deepEqual(seeded, sizes(splitBytes(toBytes("hello, world"), { seed: 7, maxChunk: 4 })));
 * assert.equal(seeded.reduce((a, b) => a + b), 12);
 * ```
 */
export function splitBytes(data: Uint8Array, how: SplitMode): Uint8Array[] {
  if (data.length === 0) return [data];
  if (how === "whole") return [data];
  const sizes: () => number = how === "bytes" ? () => 1 : Array.isArray(how)
    ? (() => {
      let i = 0;
      return () => Math.max(1, how[i++ % how.length]);
    })()
    : (() => {
      const random = seededRandom((how as { seed: number }).seed);
      const maxChunk = (how as { maxChunk?: number }).maxChunk ?? 16;
      return () => 1 + Math.floor(random() * maxChunk);
    })();
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < data.length;) {
    const n = Math.min(sizes(), data.length - offset);
    chunks.push(data.subarray(offset, offset + n));
    offset += n;
  }
  return chunks;
}

/** How a sender splits its bytes into writes (see {@linkcode splitBytes}). */
export type SplitMode = "whole" | "bytes" | number[] | { seed: number; maxChunk?: number };

/**
 * Describes a split mode for step names: "1 byte at a time", "in one write", …
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeSplit } from "./bytes.ts";
 *
 * assert.equal(describeSplit("bytes"), "1 byte at a time");
 * assert.equal(describeSplit([3, 1]), "in chunks of 3, 1 bytes");
 * assert.equal(describeSplit({ seed: 7 }), "split at random points (seed 7)");
 * ```
 */
export function describeSplit(how: SplitMode): string {
  if (how === "whole") return "in one write";
  if (how === "bytes") return "1 byte at a time";
  if (Array.isArray(how)) return `in chunks of ${how.join(", ")} bytes`;
  return `split at random points (seed ${how.seed})`;
}

/**
 * A small seeded PRNG (mulberry32): reproducible splits, drops and shuffles.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededRandom } from "./bytes.ts";
 *
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * const draws = [a(), a(), a()];
 * assert.deepEqual([b(), b(), b()], draws);
 * assert.ok(draws.every((x) => x >= 0 && x < 1));
 * assert.notEqual(seededRandom(43)(), draws[0]);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `length` bytes of numbered text lines (`<tag> 000042 abc…789\n`, the last one
 * cut to fit): readable in a transcript, and a lost, doubled or reordered piece
 * shows in the line numbers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numberedLines } from "./bytes.ts";
 *
 * const text = new TextDecoder().decode(numberedLines(100, "big"));
 * assert.equal(text.length, 100);
 * assert.ok(text.startsWith("big 000000 abcdefghijklmnopqrstuvwxyz0123456789\nbig 000001 "));
 * ```
 */
export function numberedLines(length: number, tag: string): Uint8Array {
  const out = new Uint8Array(length);
  const filler = "abcdefghijklmnopqrstuvwxyz0123456789";
  let at = 0;
  for (let n = 0; at < length; n++) {
    const line = encoder.encode(`${tag} ${String(n).padStart(6, "0")} ${filler}\n`);
    out.set(line.subarray(0, length - at), at);
    at += line.length;
  }
  return out;
}
