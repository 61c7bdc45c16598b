/**
 * Lesson 04 — streams and framing: one write is not one read.
 *
 * TCP delivers a stream of bytes, not messages. This file builds the pieces
 * every protocol on top of TCP needs: a `recv(1024)` loop, a write-all loop,
 * a bounded line reader, length-prefixed frames, the same splitters as web
 * `TransformStream`s for `conn.readable.pipeThrough(...)`, and streaming a file
 * to a socket. Read docs/04-streams-and-framing.md first; `deno task lesson 4`
 * grades your work.
 *
 * The line and frame splitters are written once, without any I/O
 * ({@linkcode LineDecoder}, {@linkcode FrameDecoder}: push bytes in, take
 * lines or frames out), and then wrapped for a connection
 * ({@linkcode LineReader}, {@linkcode FrameReader}) and for web streams
 * ({@linkcode lineStream}, {@linkcode frameStream}). Lesson 06 (chat) reads
 * its lines with a `LineReader` like yours.
 *
 * @module
 */

/** Anything with a `read` like `Deno.Conn`'s: fills part of `buffer`, returns the count, or `null` at end of stream. */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Anything with a `write` like `Deno.Conn`'s: writes *some* of `data` and returns how many bytes. */
export interface ByteWriter {
  write(data: Uint8Array): Promise<number>;
}

/** Default longest line, in bytes, not counting `\n` or `\r\n`. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024;

/** Default largest frame payload, in bytes, not counting the 4-byte header. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** Bytes asked for by each read of {@linkcode LineReader} and {@linkcode FrameReader}. */
export const DEFAULT_READ_SIZE = 16 * 1024;

/** Size of a frame's length header: a 32-bit unsigned integer, big-endian (network byte order). */
export const FRAME_HEADER_BYTES = 4;

/** A new array holding the bytes of `a` followed by those of `b` (always a copy). */
function joinBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}

// ── Part 1: a stream of bytes ───────────────────────────────────────────────

/**
 * The `recv(1024)` loop as an async generator: reads from `reader` with a
 * buffer of `size` bytes and yields what each read returned, until the read
 * returns `null` (end of stream).
 *
 * - A read returns *whatever has arrived*, 1 to `size` bytes: one write of
 *   the peer may come as several chunks, several writes as one chunk.
 * - Each yielded chunk must be its own copy: the caller may keep chunks
 *   while you read the next one into your buffer.
 *
 * @example
 * ```ts ignore
 * for await (const chunk of readChunks(conn, 1024)) console.log(chunk.length);
 * ```
 */
export async function* readChunks(
  reader: ByteReader,
  size = 1024,
): AsyncGenerator<Uint8Array, void, undefined> {
  // #region solution readChunks
  const buffer = new Uint8Array(size);
  while (true) {
    const n = await reader.read(buffer);
    if (n === null) return;
    // slice() copies: the next read overwrites `buffer`.
    yield buffer.slice(0, n);
  }
  // #endregion solution
}

/**
 * Writes every byte of `bytes` (Python's `sendall`). `writer.write()` may take
 * only part of what you give it and returns how many bytes it took: loop
 * until all are written.
 */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  // #region solution writeAll
  for (let offset = 0; offset < bytes.length;) {
    offset += await writer.write(bytes.subarray(offset));
  }
  // #endregion solution
}

// ── Part 2: lines ───────────────────────────────────────────────────────────

/** Thrown when a line is longer than the limit. The line is not kept: stop reading and close. */
export class LineTooLongError extends Error {
  override name = "LineTooLongError";
  constructor(readonly lineNumber: number, readonly maxLineBytes: number) {
    super(`line ${lineNumber} is longer than ${maxLineBytes} bytes`);
  }
}

/** Thrown for a line whose bytes are not valid UTF-8. That line is skipped; the next one can be read. */
export class InvalidUtf8Error extends Error {
  override name = "InvalidUtf8Error";
  constructor(readonly lineNumber: number) {
    super(`line ${lineNumber} is not valid UTF-8`);
  }
}

/** Options of the line splitters. */
export interface LineOptions {
  /** Longest line accepted, in bytes, without its `\n` / `\r\n` (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  maxLineBytes?: number;
}

/**
 * Splits bytes into lines, without doing any I/O: `push()` the bytes as they
 * arrive, then call `nextLine()` until it returns `undefined`; at end of
 * stream call `finish()` once for the last line.
 *
 * The rules:
 * - a line ends at `\n`; a `\r` right before that `\n` is dropped too
 *   (`\r\n`). Neither is part of the line returned. A `\r` anywhere else is
 *   an ordinary byte.
 * - lines are decoded as UTF-8 *after* they are complete, so a character
 *   whose bytes arrive in different pushes comes out whole. Bytes that are not
 *   valid UTF-8: throw {@linkcode InvalidUtf8Error} naming the line (counted
 *   from 1); that line is consumed and the next one reads normally.
 * - a line may hold at most `maxLineBytes` bytes (a line of exactly
 *   `maxLineBytes` is fine). A longer one is a {@linkcode LineTooLongError},
 *   thrown by `nextLine()` *as soon as the bytes pushed prove it* — do not
 *   wait for a newline that may never come. So the decoder never holds more
 *   than `maxLineBytes + 1` bytes of an unfinished line.
 *
 * @example
 * ```ts ignore
 * const lines = new LineDecoder({ maxLineBytes: 100 });
 * lines.push(new TextEncoder().encode("one\r\ntw"));
 * lines.nextLine(); // "one"
 * lines.nextLine(); // undefined: "tw" is not a whole line yet
 * lines.finish(); // "tw": the stream ended, so it is the last line
 * ```
 */
export class LineDecoder {
  readonly maxLineBytes: number;
  /** Bytes pushed and not yet returned as lines. */
  #pending: Uint8Array = new Uint8Array(0);
  /** Lines taken out so far (for error messages). */
  #lineNumber = 0;
  /** fatal: invalid bytes throw instead of turning into U+FFFD; ignoreBOM: keep every byte. */
  readonly #utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  constructor(options: LineOptions = {}) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** Adds bytes that arrived. Keep your own copy: the caller may reuse `chunk`'s memory. */
  push(chunk: Uint8Array): void {
    // #region solution LineDecoder.push
    this.#pending = joinBytes(this.#pending, chunk);
    // #endregion solution
  }

  /**
   * The next complete line, without its `\n` or `\r\n`; `undefined` when no
   * complete line has arrived yet. Throws {@linkcode LineTooLongError} as soon
   * as the line being received is known to be too long, and
   * {@linkcode InvalidUtf8Error} for a line that is not UTF-8.
   */
  nextLine(): string | undefined {
    // #region solution LineDecoder.nextLine
    const pending = this.#pending;
    const newline = pending.indexOf(0x0a);
    if (newline < 0) {
      // No end yet. max + 1 bytes are fine only if the last is a \r that a \n may follow.
      const max = this.maxLineBytes;
      if (pending.length > max + 1 || (pending.length === max + 1 && pending.at(-1) !== 0x0d)) {
        throw new LineTooLongError(this.#lineNumber + 1, max);
      }
      return undefined;
    }
    const end = newline > 0 && pending[newline - 1] === 0x0d ? newline - 1 : newline;
    if (end > this.maxLineBytes) {
      throw new LineTooLongError(this.#lineNumber + 1, this.maxLineBytes);
    }
    const line = pending.subarray(0, end);
    // Keep what follows the newline: it is the start of the next line(s).
    this.#pending = pending.subarray(newline + 1);
    return this.#decodeLine(line);
    // #endregion solution
  }

  /**
   * Call once at end of stream, after `nextLine()` returned `undefined`.
   * Returns the last line if the stream did not end with a newline (the bytes
   * left, as they are), or `null` when nothing is left. The same limit and
   * UTF-8 rules apply to that last line.
   */
  finish(): string | null {
    // #region solution LineDecoder.finish
    const rest = this.#pending;
    if (rest.length === 0) return null;
    if (rest.length > this.maxLineBytes) {
      throw new LineTooLongError(this.#lineNumber + 1, this.maxLineBytes);
    }
    this.#pending = new Uint8Array(0);
    return this.#decodeLine(rest);
    // #endregion solution
  }

  /**
   * Counts the line (lines are numbered from 1, bad ones included) and
   * decodes its bytes as UTF-8 with `#utf8`, turning the decoder's TypeError
   * into an {@linkcode InvalidUtf8Error} that names the line.
   */
  #decodeLine(line: Uint8Array): string {
    // #region solution LineDecoder.#decodeLine
    this.#lineNumber++;
    try {
      return this.#utf8.decode(line);
    } catch {
      throw new InvalidUtf8Error(this.#lineNumber);
    }
    // #endregion solution
  }
}

/** Options of {@linkcode LineReader}. */
export interface LineReaderOptions extends LineOptions {
  /** Bytes asked for by each read (default {@linkcode DEFAULT_READ_SIZE}). */
  readSize?: number;
}

/**
 * Reads lines from a connection (or any {@linkcode ByteReader}) with a
 * {@linkcode LineDecoder}: the reusable line reader of the workbook.
 *
 * @example
 * ```ts ignore
 * const lines = new LineReader(conn, { maxLineBytes: 1024 });
 * for await (const line of lines) console.log(line);
 * ```
 */
export class LineReader implements AsyncIterable<string> {
  readonly #reader: ByteReader;
  readonly #decoder: LineDecoder;
  readonly #buffer: Uint8Array;
  /** The reader returned end of stream: no more reads. */
  #ended = false;

  constructor(reader: ByteReader, options: LineReaderOptions = {}) {
    this.#reader = reader;
    this.#decoder = new LineDecoder(options);
    this.#buffer = new Uint8Array(options.readSize ?? DEFAULT_READ_SIZE);
  }

  /**
   * The next line (without `\n` / `\r\n`), or `null` once the stream has
   * ended and every line was returned — including a last line that had no
   * newline. Reads only when the decoder has no complete line; throws what
   * the decoder throws.
   */
  async readLine(): Promise<string | null> {
    // #region solution LineReader.readLine
    while (true) {
      const line = this.#decoder.nextLine();
      if (line !== undefined) return line;
      if (this.#ended) return this.#decoder.finish();
      const n = await this.#reader.read(this.#buffer);
      if (n === null) this.#ended = true;
      else this.#decoder.push(this.#buffer.subarray(0, n));
    }
    // #endregion solution
  }

  /** `for await (const line of reader)`: every line until the end of the stream. */
  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (let line = await this.readLine(); line !== null; line = await this.readLine()) {
      yield line;
    }
  }
}

/**
 * The line splitter as a web stream: bytes in, lines (strings, without
 * `\n` / `\r\n`) out, so that `conn.readable.pipeThrough(lineStream())` reads
 * a socket line by line like Python's `sock.makefile()`. At the end of the
 * input, the last unterminated line comes out too. Any error of the decoder
 * errors the stream (the reader of the lines sees it).
 */
export function lineStream(options: LineOptions = {}): TransformStream<Uint8Array, string> {
  // #region solution lineStream
  const decoder = new LineDecoder(options);
  return new TransformStream<Uint8Array, string>({
    transform(chunk, controller) {
      decoder.push(chunk);
      for (let line = decoder.nextLine(); line !== undefined; line = decoder.nextLine()) {
        controller.enqueue(line);
      }
    },
    flush(controller) {
      const last = decoder.finish();
      if (last !== null) controller.enqueue(last);
    },
  });
  // #endregion solution
}

// ── Part 3: length-prefixed frames ──────────────────────────────────────────

/** Thrown for a frame whose payload is over the limit — by the encoder, or by a decoder as soon as the header announces it. */
export class FrameTooLargeError extends Error {
  override name = "FrameTooLargeError";
  constructor(readonly length: number, readonly maxFrameBytes: number) {
    super(`a frame of ${length} bytes is over the limit of ${maxFrameBytes} bytes`);
  }
}

/** Thrown when the stream ends in the middle of a frame (inside its header or its payload). */
export class TruncatedFrameError extends Error {
  override name = "TruncatedFrameError";
  /**
   * @param received bytes of the unfinished frame that did arrive, header included
   * @param expected bytes the whole frame needs, header included (4 while the header is incomplete)
   */
  constructor(readonly received: number, readonly expected: number) {
    super(
      received < FRAME_HEADER_BYTES
        ? `the stream ended ${received} byte(s) into a ${FRAME_HEADER_BYTES}-byte frame header`
        : `the stream ended after ${received - FRAME_HEADER_BYTES} of the ` +
          `${expected - FRAME_HEADER_BYTES} payload bytes of a frame`,
    );
  }
}

/** Options of the frame encoder and decoders. */
export interface FrameOptions {
  /** Largest payload accepted, in bytes (default {@linkcode DEFAULT_MAX_FRAME_BYTES}). */
  maxFrameBytes?: number;
}

/**
 * One frame: the payload's length as a 4-byte unsigned big-endian integer,
 * then the payload. `encodeFrame(bytes of "hi")` is `00 00 00 02 68 69`.
 * A payload over `maxFrameBytes` (default {@linkcode DEFAULT_MAX_FRAME_BYTES})
 * throws {@linkcode FrameTooLargeError}; exactly `maxFrameBytes` is fine.
 */
export function encodeFrame(
  payload: Uint8Array,
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array {
  // #region solution encodeFrame
  if (payload.length > maxFrameBytes) throw new FrameTooLargeError(payload.length, maxFrameBytes);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  // DataView writes big-endian unless told otherwise: network byte order.
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
  // #endregion solution
}

/**
 * Splits bytes into length-prefixed frames, without doing any I/O: `push()`
 * bytes as they arrive, call `nextFrame()` until it returns `undefined`, and
 * call `finish()` at end of stream.
 *
 * The header is not to be trusted: it is 4 bytes anyone can send. As soon as
 * a header announces more than `maxFrameBytes`, `nextFrame()` throws
 * {@linkcode FrameTooLargeError} — before waiting for, buffering or
 * allocating the payload. A payload of exactly `maxFrameBytes` is fine; so is
 * an empty one (a frame of length 0 is a frame, not the end).
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  /** Bytes pushed and not yet returned as frames. */
  #pending: Uint8Array = new Uint8Array(0);

  constructor(options: FrameOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Adds bytes that arrived. Keep your own copy: the caller may reuse `chunk`'s memory. */
  push(chunk: Uint8Array): void {
    // #region solution FrameDecoder.push
    this.#pending = joinBytes(this.#pending, chunk);
    // #endregion solution
  }

  /**
   * The payload of the next complete frame (its own copy), or `undefined` when
   * no complete frame has arrived yet. Throws {@linkcode FrameTooLargeError}
   * as soon as the header of the next frame is over the limit.
   */
  nextFrame(): Uint8Array | undefined {
    // #region solution FrameDecoder.nextFrame
    const pending = this.#pending;
    if (pending.length < FRAME_HEADER_BYTES) return undefined;
    const length = new DataView(pending.buffer, pending.byteOffset, FRAME_HEADER_BYTES)
      .getUint32(0);
    // Check the announced length before waiting for (or making room for) the payload.
    if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
    const end = FRAME_HEADER_BYTES + length;
    if (pending.length < end) return undefined;
    const payload = pending.slice(FRAME_HEADER_BYTES, end);
    this.#pending = pending.subarray(end);
    return payload;
    // #endregion solution
  }

  /**
   * Call once at end of stream, after `nextFrame()` returned `undefined`:
   * bytes left over are the start of a frame that will never be completed,
   * so throw {@linkcode TruncatedFrameError}. Nothing left: return normally.
   */
  finish(): void {
    // #region solution FrameDecoder.finish
    const rest = this.#pending;
    if (rest.length === 0) return;
    const expected = rest.length < FRAME_HEADER_BYTES
      ? FRAME_HEADER_BYTES
      : FRAME_HEADER_BYTES + new DataView(rest.buffer, rest.byteOffset, 4).getUint32(0);
    throw new TruncatedFrameError(rest.length, expected);
    // #endregion solution
  }
}

/** Options of {@linkcode FrameReader}. */
export interface FrameReaderOptions extends FrameOptions {
  /** Bytes asked for by each read (default {@linkcode DEFAULT_READ_SIZE}). */
  readSize?: number;
}

/**
 * Reads length-prefixed frames from a connection (or any
 * {@linkcode ByteReader}) with a {@linkcode FrameDecoder}.
 *
 * @example
 * ```ts ignore
 * const frames = new FrameReader(conn, { maxFrameBytes: 65536 });
 * for (let frame = await frames.readFrame(); frame; frame = await frames.readFrame()) {
 *   await writeFrame(conn, frame);
 * }
 * ```
 */
export class FrameReader {
  readonly #reader: ByteReader;
  readonly #decoder: FrameDecoder;
  readonly #buffer: Uint8Array;
  /** The reader returned end of stream: no more reads. */
  #ended = false;

  constructor(reader: ByteReader, options: FrameReaderOptions = {}) {
    this.#reader = reader;
    this.#decoder = new FrameDecoder(options);
    this.#buffer = new Uint8Array(options.readSize ?? DEFAULT_READ_SIZE);
  }

  /**
   * The next frame's payload, or `null` when the stream ended cleanly between
   * frames. Throws {@linkcode TruncatedFrameError} when it ended inside one,
   * and {@linkcode FrameTooLargeError} as soon as an oversized header arrives
   * (without reading further).
   */
  async readFrame(): Promise<Uint8Array | null> {
    // #region solution FrameReader.readFrame
    while (true) {
      const frame = this.#decoder.nextFrame();
      if (frame !== undefined) return frame;
      if (this.#ended) {
        this.#decoder.finish();
        return null;
      }
      const n = await this.#reader.read(this.#buffer);
      if (n === null) this.#ended = true;
      else this.#decoder.push(this.#buffer.subarray(0, n));
    }
    // #endregion solution
  }
}

/**
 * Writes `payload` as one frame (see {@linkcode encodeFrame}), every byte of
 * it, even when `writer.write()` takes only a few bytes at a time.
 */
export async function writeFrame(
  writer: ByteWriter,
  payload: Uint8Array,
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Promise<void> {
  // #region solution writeFrame
  await writeAll(writer, encodeFrame(payload, maxFrameBytes));
  // #endregion solution
}

/**
 * The frame splitter as a web stream: bytes in, payloads out, for
 * `conn.readable.pipeThrough(frameStream())`. Errors the stream with
 * {@linkcode FrameTooLargeError} as soon as an oversized header arrives, and
 * with {@linkcode TruncatedFrameError} when the input ends inside a frame.
 */
export function frameStream(options: FrameOptions = {}): TransformStream<Uint8Array, Uint8Array> {
  // #region solution frameStream
  const decoder = new FrameDecoder(options);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      decoder.push(chunk);
      for (let frame = decoder.nextFrame(); frame !== undefined; frame = decoder.nextFrame()) {
        controller.enqueue(frame);
      }
    },
    flush() {
      decoder.finish();
    },
  });
  // #endregion solution
}

// ── Part 4: a file to a socket ──────────────────────────────────────────────

/**
 * Streams the file at `path` into `writable` (e.g. `conn.writable`), like
 * `socket.sendfile()`: in chunks, never the whole file in memory. Returns the
 * number of bytes sent. Closes the file; does *not* close `writable` — the
 * caller may have more to send on that connection.
 */
export async function sendFile(
  path: string,
  writable: WritableStream<Uint8Array>,
): Promise<number> {
  // #region solution sendFile
  const file = await Deno.open(path, { read: true });
  let sent = 0;
  const count = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
  // file.readable closes the file when it ends (or fails); preventClose keeps the socket open.
  await file.readable.pipeThrough(count).pipeTo(writable, { preventClose: true });
  return sent;
  // #endregion solution
}
