/**
 * Lesson 02 — a TCP client that reads the whole reply.
 *
 * The client speaks a line protocol: it sends one line ending in `\n` and the
 * server answers with one line ending in `\n` (lesson 03's server answers
 * `hello\n` with `ack-HELLO\n`). The bytes of a reply arrive in as many reads
 * as the network likes; a write may take only part of a request; a reply may
 * be UTF-8 or GBK; the server may be absent or hang up half-way. Every
 * function below deals with one of those facts. Read docs/02-tcp-client.md
 * first; `deno task lesson 2` grades this file over real sockets.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging } from "workbook";

const log = programLogger("client");

/** Where a server listens. */
export interface ServerAddress {
  hostname: string;
  port: number;
}

/** Anything bytes can be read from: a `Deno.Conn`, `Deno.stdin`, or a test double. */
export interface ByteReader {
  /** Fills the start of `buffer`; resolves to how many bytes, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Anything bytes can be written to: a `Deno.Conn`, or a test double. */
export interface ByteWriter {
  /** Writes some of `bytes`, perhaps not all; resolves to how many it took. */
  write(bytes: Uint8Array): Promise<number>;
}

/** The text encodings a reply may use. */
export type ReplyEncoding = "utf-8" | "gbk";

/** A reply longer than this (in bytes) is refused unless the caller allows more. */
export const DEFAULT_MAX_REPLY_BYTES = 1024 * 1024;

/** How many bytes one read asks for. */
export const READ_SIZE = 16 * 1024;

/** The end of a line: the byte `\n` (0x0a). */
export const NEWLINE: Uint8Array = new Uint8Array([0x0a]);

// ── Errors (given: throw them, do not change them) ──────────────────────────

/** Nothing accepts connections at `address`: the connection was refused. */
export class ServerUnavailableError extends Error {
  override name = "ServerUnavailableError";
  constructor(readonly address: ServerAddress, options?: { cause?: unknown }) {
    super(
      `no server at ${address.hostname}:${address.port}: the connection was refused ` +
        `(is the server running, on that host and port?)`,
      options,
    );
  }
}

/** The server closed the connection before the reply was complete. */
export class IncompleteReplyError extends Error {
  override name = "IncompleteReplyError";
  /**
   * @param received the bytes of the reply that did arrive (maybe none)
   * @param delimiter the bytes that would have ended the reply
   */
  constructor(readonly received: Uint8Array, readonly delimiter: Uint8Array = NEWLINE) {
    super(
      received.length === 0
        ? "the server closed the connection without replying"
        : `the server closed the connection after ${received.length} byte(s) of the reply, ` +
          `before its end ${JSON.stringify(new TextDecoder().decode(delimiter))}: ` +
          JSON.stringify(new TextDecoder().decode(received.subarray(0, 60))) +
          (received.length > 60 ? "…" : ""),
    );
  }
}

/** A reply grew past the limit without ending. Close the connection: it is out of step now. */
export class ReplyTooLongError extends Error {
  override name = "ReplyTooLongError";
  constructor(readonly maxBytes: number) {
    super(`the reply is longer than ${maxBytes} bytes; giving up on this connection`);
  }
}

// ── Helpers you may use (they are not part of the task) ─────────────────────

/** The bytes of all `parts`, one after the other, in a new array. */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Where `needle` first occurs in `haystack` at or after `from`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = Math.max(0, from); i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// ── Part 1: write everything ────────────────────────────────────────────────

/**
 * Writes every byte of `bytes` to `writer` (Python's `sendall`).
 *
 * `writer.write(b)` may take only the first part of `b` — a socket takes what
 * fits in the kernel's send buffer — and resolves to how many bytes it took.
 * Loop until all are written. Resolves once the last byte is handed over.
 */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  // #region solution writeAll
  for (let offset = 0; offset < bytes.length;) {
    offset += await writer.write(bytes.subarray(offset));
  }
  // #endregion solution
}

// ── Part 2: read a whole reply ──────────────────────────────────────────────

/**
 * Reads replies from a byte stream. One read returns whatever has arrived: a
 * piece of a reply, or one reply and the start of the next. The reader keeps
 * the bytes it has read but not yet returned in `#pending`, so the next call
 * starts with them.
 *
 * @example
 * ```ts ignore
 * const reader = new ReplyReader(conn);
 * const header = await reader.readUntil("\n"); // "200 OK\n"
 * const body = await reader.readToEnd(); // the rest, until the server closes
 * ```
 */
export class ReplyReader {
  readonly #source: ByteReader;
  /** Bytes read from the source and not returned yet: the start of the next reply. */
  #pending: Uint8Array = new Uint8Array(0);

  constructor(source: ByteReader) {
    this.#source = source;
  }

  /** Reads once from the source: a new array of the bytes that arrived, or `null` at EOF. */
  async #readChunk(): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(READ_SIZE);
    const n = await this.#source.read(buffer);
    return n === null ? null : buffer.subarray(0, n);
  }

  /**
   * Returns the bytes up to and including the first `delimiter` (a string is
   * taken as UTF-8), reading as often as needed. Bytes after the delimiter
   * are kept for the next call: they are the next reply.
   *
   * - The delimiter may be split between two reads (`"\r"` in one, `"\n"` in
   *   the next): look for it across the boundary.
   * - If the stream ends first, throw an {@linkcode IncompleteReplyError}
   *   holding the bytes that did arrive.
   * - A reply (delimiter included) may be at most `maxBytes` long; as soon as
   *   that cannot hold, throw a {@linkcode ReplyTooLongError} — do not wait
   *   for more bytes of a reply that is already too long.
   */
  async readUntil(
    delimiter: string | Uint8Array,
    maxBytes: number = DEFAULT_MAX_REPLY_BYTES,
  ): Promise<Uint8Array> {
    // The delimiter as bytes: use `delim` from here on.
    const delim = typeof delimiter === "string" ? new TextEncoder().encode(delimiter) : delimiter;
    if (delim.length === 0) {
      throw new RangeError("readUntil needs a delimiter of at least one byte");
    }
    // #region solution ReplyReader.readUntil
    let searchFrom = 0;
    while (true) {
      const at = indexOfBytes(this.#pending, delim, searchFrom);
      if (at >= 0) {
        const replyLength = at + delim.length;
        if (replyLength > maxBytes) throw new ReplyTooLongError(maxBytes);
        const reply = this.#pending.slice(0, replyLength);
        // What follows the delimiter arrived early: it is the start of the next reply.
        this.#pending = this.#pending.slice(replyLength);
        return reply;
      }
      if (this.#pending.length >= maxBytes) throw new ReplyTooLongError(maxBytes);
      // The delimiter may straddle two reads: search again from just before the new bytes.
      searchFrom = Math.max(0, this.#pending.length - delim.length + 1);
      const chunk = await this.#readChunk();
      if (chunk === null) {
        const received = this.#pending;
        this.#pending = new Uint8Array(0);
        throw new IncompleteReplyError(received, delim);
      }
      this.#pending = concatBytes([this.#pending, chunk]);
    }
    // #endregion solution
  }

  /**
   * Returns every byte until the stream ends (read returns `null`): the kept
   * bytes first, then all later reads. For replies that end when the server
   * closes, like a body after a header line. More than `maxBytes` in all:
   * throw a {@linkcode ReplyTooLongError}.
   */
  async readToEnd(maxBytes: number = DEFAULT_MAX_REPLY_BYTES): Promise<Uint8Array> {
    // #region solution ReplyReader.readToEnd
    const parts = [this.#pending];
    let total = this.#pending.length;
    this.#pending = new Uint8Array(0);
    while (total <= maxBytes) {
      const chunk = await this.#readChunk();
      if (chunk === null) return concatBytes(parts);
      parts.push(chunk);
      total += chunk.length;
    }
    throw new ReplyTooLongError(maxBytes);
    // #endregion solution
  }
}

// ── Part 3: connect, ask, answer ────────────────────────────────────────────

/**
 * Connects to `address` over TCP. When nothing listens there (Deno throws
 * `Deno.errors.ConnectionRefused`), throw a {@linkcode ServerUnavailableError}
 * naming the address instead, with the original error as its `cause`. Other
 * errors pass through unchanged.
 */
export async function connectTo(address: ServerAddress): Promise<Deno.TcpConn> {
  // #region solution connectTo
  try {
    return await Deno.connect({ hostname: address.hostname, port: address.port });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new ServerUnavailableError(address, { cause: error });
    }
    throw error;
  }
  // #endregion solution
}

/** Options of a {@linkcode LineClient}. */
export interface ClientOptions {
  /** How the server encodes its replies (default `"utf-8"`). Requests are always UTF-8. */
  encoding?: ReplyEncoding;
  /** Longest reply accepted, `\n` included (default {@linkcode DEFAULT_MAX_REPLY_BYTES}). */
  maxReplyBytes?: number;
}

/**
 * One connection to a line server, for as many requests as you like.
 *
 * @example
 * ```ts ignore
 * const client = await LineClient.connect({ hostname: "127.0.0.1", port: 9000 });
 * try {
 *   console.log(await client.request("hello")); // "ack-HELLO"
 *   console.log(await client.request("again")); // "ack-AGAIN"
 * } finally {
 *   client.close();
 * }
 * ```
 */
export class LineClient {
  readonly conn: Deno.TcpConn;
  readonly encoding: ReplyEncoding;
  readonly maxReplyBytes: number;
  /** Use it for every reply: it keeps bytes that arrived early for the next request. */
  readonly reader: ReplyReader;

  /** Wraps a connection that is already open. */
  constructor(conn: Deno.TcpConn, options: ClientOptions = {}) {
    this.conn = conn;
    this.encoding = options.encoding ?? "utf-8";
    this.maxReplyBytes = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    this.reader = new ReplyReader(conn);
  }

  /** Connects with {@linkcode connectTo} and wraps the connection. */
  static async connect(address: ServerAddress, options: ClientOptions = {}): Promise<LineClient> {
    return new LineClient(await connectTo(address), options);
  }

  /**
   * Sends `line` followed by `\n` (encoded as UTF-8, written in full), reads
   * one reply up to its `\n`, and returns it decoded in the client's encoding,
   * without the `\n`.
   *
   * Decode the reply once, when all its bytes are in: a character is 2 to 4
   * bytes, and a read may end in the middle of one. If the server closes
   * before the `\n`, let the {@linkcode IncompleteReplyError} through.
   */
  async request(line: string): Promise<string> {
    // #region solution LineClient.request
    await writeAll(this.conn, new TextEncoder().encode(line + "\n"));
    const reply = await this.reader.readUntil(NEWLINE, this.maxReplyBytes);
    // Decode only now, with every byte of the reply in: no character is cut in two.
    return new TextDecoder(this.encoding).decode(reply.subarray(0, reply.length - 1));
    // #endregion solution
  }

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }
}

/**
 * One request on a fresh connection: connects to `address`, sends `line`,
 * returns the decoded reply line (see {@linkcode LineClient.request}), and
 * closes the connection — also when something fails half-way.
 *
 * @example
 * ```ts ignore
 * const reply = await request({ hostname: "127.0.0.1", port: 9000 }, "hello");
 * ```
 */
export async function request(
  address: ServerAddress,
  line: string,
  options: ClientOptions = {},
): Promise<string> {
  // #region solution request
  const client = await LineClient.connect(address, options);
  try {
    return await client.request(line);
  } finally {
    client.close();
  }
  // #endregion solution
}

// ── The program ─────────────────────────────────────────────────────────────

/** The lines to send: `--message`, or each line typed on stdin until Ctrl-D. */
async function* inputLines(message: string | undefined): AsyncGenerator<string> {
  if (message !== undefined) {
    yield message;
    return;
  }
  // Standard input is a byte stream like any socket: the same reader splits it into lines.
  const stdin = new ReplyReader(Deno.stdin);
  const decoder = new TextDecoder();
  while (true) {
    try {
      const line = await stdin.readUntil(NEWLINE);
      yield decoder.decode(line.subarray(0, line.length - 1)).replace(/\r$/, "");
    } catch (error) {
      if (!(error instanceof IncompleteReplyError)) throw error;
      // End of input; a last line without "\n" still counts.
      if (error.received.length > 0) yield decoder.decode(error.received);
      return;
    }
  }
}

/**
 * `deno task run 2 client --port 9000 --message hello` prints the reply to
 * `hello`; without `--message` it sends each line you type. `--encoding gbk`
 * decodes GBK replies.
 */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["message", "encoding"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const encoding = args.extra.encoding ?? "utf-8";
  if (encoding !== "utf-8" && encoding !== "gbk") {
    console.error(`--encoding must be utf-8 or gbk, got ${encoding}`);
    Deno.exit(2);
  }
  let client: LineClient;
  try {
    client = await LineClient.connect({ hostname: args.host, port: args.port }, { encoding });
  } catch (error) {
    if (!(error instanceof ServerUnavailableError)) throw error;
    log.error(error.message);
    Deno.exit(1);
  }
  const { localAddr, remoteAddr } = client.conn;
  log.info("connected to {server} from {local}", {
    server: `${remoteAddr.hostname}:${remoteAddr.port}`,
    local: `${localAddr.hostname}:${localAddr.port}`,
  });
  try {
    for await (const line of inputLines(args.extra.message)) {
      log.debug("sending {line}", { line });
      console.log(await client.request(line));
    }
  } catch (error) {
    if (!(error instanceof IncompleteReplyError || error instanceof ReplyTooLongError)) throw error;
    log.error(error.message);
    Deno.exitCode = 1;
  } finally {
    client.close();
    log.info("disconnected");
  }
}

if (import.meta.main) await main();
