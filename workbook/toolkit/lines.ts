/**
 * The bounded line reader and the write-all loop lesson 06's chat server and
 * client import from `"workbook"`. Lesson 04 builds the full version
 * (`LineDecoder`, `LineReader`) and explains every rule.
 *
 * - A line ends at `\n`; a `\r` right before it is dropped (`\r\n`, as telnet
 *   and some `nc` builds send). Lines come out as bytes: decode each one only
 *   when it is complete, so a character split across reads stays whole.
 * - A line holds at most `maxLineBytes` bytes. A longer one throws
 *   {@linkcode LineTooLongError} as soon as the bytes prove it, without
 *   waiting for a newline that may never come: a client cannot make the
 *   reader hold more than `maxLineBytes + 1` bytes of an unfinished line.
 * - At end of stream, bytes after the last `\n` come out as a last line.
 *
 * @module
 */

/**
 * Anything with a `read` like `Deno.Conn`'s.
 *
 * @example A reader over bytes held in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ByteReader } from "workbook";
 *
 * const chunks = [new Uint8Array([104, 105])]; // "hi"
 * const reader: ByteReader = {
 *   read(buffer) {
 *     const chunk = chunks.shift();
 *     if (chunk === undefined) return Promise.resolve(null); // end of stream
 *     buffer.set(chunk);
 *     return Promise.resolve(chunk.length);
 *   },
 * };
 * assert.equal(await reader.read(new Uint8Array(8)), 2);
 * assert.equal(await reader.read(new Uint8Array(8)), null);
 * ```
 */
export interface ByteReader {
  /** Reads into `buffer`: resolves with how many bytes came, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * Anything with a `write` like `Deno.Conn`'s: writes *some* of `data`, returns how many bytes.
 *
 * @example A writer that takes at most 2 bytes per call, like a full socket buffer
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ByteWriter } from "workbook";
 *
 * const taken: number[] = [];
 * const writer: ByteWriter = {
 *   write(data) {
 *     const part = data.subarray(0, 2);
 *     taken.push(...part);
 *     return Promise.resolve(part.length);
 *   },
 * };
 * assert.equal(await writer.write(new Uint8Array([1, 2, 3])), 2); // only part of it
 * assert.deepEqual(taken, [1, 2]);
 * ```
 */
export interface ByteWriter {
  /** Writes some of `data` (at least one byte); resolves with how many bytes were taken. */
  write(data: Uint8Array): Promise<number>;
}

/**
 * Thrown by {@linkcode readLines} for a line longer than the limit. Stop reading: the stream is out of step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineTooLongError, readLines } from "workbook";
 *
 * const bytes = new TextEncoder().encode("far too long for four bytes\n");
 * let sent = false;
 * const reader = {
 *   read(buffer: Uint8Array) {
 *     if (sent) return Promise.resolve(null);
 *     sent = true;
 *     buffer.set(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * };
 * await assert.rejects(Array.fromAsync(readLines(reader, 4)), (error) => {
 *   assert.ok(error instanceof LineTooLongError);
 *   assert.equal(error.maxLineBytes, 4);
 *   return true;
 * });
 * ```
 */
export class LineTooLongError extends Error {
  /** Always `"LineTooLongError"`. */
  override name = "LineTooLongError";

  /**
   * Builds the error for a line past the limit.
   *
   * @param maxLineBytes the limit the line broke, in bytes
   */
  constructor(readonly maxLineBytes: number) {
    super(`a line is longer than ${maxLineBytes} bytes`);
  }
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** The line without its trailing `\r`, if it has one. */
function withoutCarriageReturn(line: Uint8Array): Uint8Array {
  return line.at(-1) === CARRIAGE_RETURN ? line.subarray(0, -1) : line;
}

/**
 * Yields each line read from `reader` as bytes, without its `\n` / `\r\n`.
 * Throws {@linkcode LineTooLongError} past `maxLineBytes`; read errors (a
 * reset, a closed connection) come out of the loop as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ByteReader, readLines } from "workbook";
 *
 * // Reads split lines anywhere, even inside "\r\n" or a character.
 * const chunks = ["hel", "lo\r", "\nwörl", "d\nlast"].map((text) => new TextEncoder().encode(text));
 * const reader: ByteReader = {
 *   read(buffer) {
 *     const chunk = chunks.shift();
 *     if (chunk === undefined) return Promise.resolve(null);
 *     buffer.set(chunk);
 *     return Promise.resolve(chunk.length);
 *   },
 * };
 * const utf8 = new TextDecoder("utf-8", { fatal: true });
 * const lines: string[] = [];
 * for await (const bytes of readLines(reader, 1024)) lines.push(utf8.decode(bytes));
 * assert.deepEqual(lines, ["hello", "wörld", "last"]);
 * ```
 */
export async function* readLines(
  reader: ByteReader,
  maxLineBytes: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  const buffer = new Uint8Array(16 * 1024);
  let pending = new Uint8Array(0);
  while (true) {
    const n = await reader.read(buffer);
    if (n === null) break;
    const joined = new Uint8Array(pending.length + n);
    joined.set(pending, 0);
    joined.set(buffer.subarray(0, n), pending.length);
    let start = 0;
    for (let end = joined.indexOf(NEWLINE); end >= 0; end = joined.indexOf(NEWLINE, start)) {
      const line = withoutCarriageReturn(joined.subarray(start, end));
      if (line.length > maxLineBytes) throw new LineTooLongError(maxLineBytes);
      start = end + 1;
      yield line.slice();
    }
    pending = joined.slice(start);
    // No newline yet, and already too long even if a `\r\n` came next.
    if (pending.length > maxLineBytes + 1) throw new LineTooLongError(maxLineBytes);
  }
  const last = withoutCarriageReturn(pending);
  if (last.length > maxLineBytes) throw new LineTooLongError(maxLineBytes);
  if (pending.length > 0) yield last;
}

/**
 * Writes every byte of `bytes`: `write()` may take only part of them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ByteWriter, writeAll } from "workbook";
 *
 * const taken: number[] = [];
 * const calls: number[] = [];
 * const writer: ByteWriter = { // takes at most 2 bytes per call
 *   write(data) {
 *     taken.push(...data.subarray(0, 2));
 *     calls.push(Math.min(2, data.length));
 *     return Promise.resolve(Math.min(2, data.length));
 *   },
 * };
 * await writeAll(writer, new Uint8Array([1, 2, 3, 4, 5]));
 * assert.deepEqual(taken, [1, 2, 3, 4, 5]);
 * assert.deepEqual(calls, [2, 2, 1]);
 * ```
 */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await writer.write(bytes.subarray(offset));
  }
}

/**
 * True for the errors that mean "the peer is gone or the connection was closed here".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isConnectionGone } from "workbook";
 *
 * assert.ok(isConnectionGone(new Deno.errors.ConnectionReset("reset by peer")));
 * assert.ok(isConnectionGone(new Deno.errors.BrokenPipe("broken pipe")));
 * assert.ok(!isConnectionGone(new TypeError("a bug, not a hang-up")));
 * ```
 */
export function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/**
 * Closes `conn`, ignoring "already closed".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeQuietly } from "workbook";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * listener.close();
 * assert.throws(() => listener.close(), Deno.errors.BadResource);
 * closeQuietly(listener); // the second close is no error here
 * ```
 */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Closed before (a hang-up, or the other path of the same ending).
  }
}
