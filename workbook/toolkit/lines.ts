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

/** Anything with a `read` like `Deno.Conn`'s. */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Anything with a `write` like `Deno.Conn`'s: writes *some* of `data`, returns how many bytes. */
export interface ByteWriter {
  write(data: Uint8Array): Promise<number>;
}

/** Thrown by {@linkcode readLines} for a line longer than the limit. Stop reading: the stream is out of step. */
export class LineTooLongError extends Error {
  override name = "LineTooLongError";
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
 * ```ts ignore
 * const utf8 = new TextDecoder("utf-8", { fatal: true });
 * for await (const bytes of readLines(conn, 1024)) console.log(utf8.decode(bytes));
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

/** Writes every byte of `bytes`: `write()` may take only part of them. */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await writer.write(bytes.subarray(offset));
  }
}

/** True for the errors that mean "the peer is gone or the connection was closed here". */
export function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/** Closes `conn`, ignoring "already closed". */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Closed before (a hang-up, or the other path of the same ending).
  }
}
