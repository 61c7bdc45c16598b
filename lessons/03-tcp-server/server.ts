/**
 * Lesson 03 — a TCP server: serial, then a task per connection.
 *
 * The protocol (the "ack" server): the client sends lines ending in `\n`; the
 * server answers each line with `ack-` and the line with its ASCII letters
 * upper-cased: `hello\n` → `ack-HELLO\n`. Read docs/03-tcp-server.md first;
 * `deno task lesson 3` grades this file over real sockets.
 *
 * @module
 */
import {
  ACCEPT_PAUSE_MS,
  isOutOfDescriptors,
  MAX_ACCEPT_PAUSE_MS,
  programLogger,
  sleep,
} from "workbook";

const serialLog = programLogger("serial");
const concurrentLog = programLogger("concurrent");

/** Every reply starts with these bytes, then the line in upper case. */
export const ACK = "ack-";

/**
 * The longest line the server accepts, in bytes, not counting its `\n`.
 * A line of exactly `MAX_LINE` bytes is fine; one byte more is refused.
 */
export const MAX_LINE = 1024;

/**
 * Sent instead of a reply when a line is longer than {@linkcode MAX_LINE};
 * then the server closes the connection.
 */
export const LINE_TOO_LONG = `error: line longer than ${MAX_LINE} bytes\n`;

/**
 * How one connection ended, as {@linkcode handleConnection} reports it:
 * - `"eof"`: the client finished sending (read returned `null`); every line,
 *   even a last one without `\n`, was answered, then the server closed its side;
 * - `"reset"`: the client vanished: the connection was reset (RST) or the
 *   pipe broke while the server wrote;
 * - `"too-long"`: a line passed {@linkcode MAX_LINE}; the server sent
 *   {@linkcode LINE_TOO_LONG} and closed;
 * - `"closed"`: the server closed the connection itself (`server.close()`),
 *   which cancels a pending read.
 */
export type Ending = "eof" | "reset" | "too-long" | "closed";

/** A running server. */
export interface LineServer {
  /** Where the server listens (port 0 in the options means the kernel picked this port). */
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes every live connection, and resolves once every
   * connection handler has finished. Calling it twice is harmless.
   */
  close(): Promise<void>;
}

/** Where a server listens, and how it waits. */
export interface ServerOptions {
  /** Default `"127.0.0.1"`: a lesson server is not for the network. */
  hostname?: string;
  /** Default 0: the kernel picks a free port; read it from `server.addr.port`. */
  port?: number;
  /**
   * How the server waits `ms` milliseconds before it calls `accept()` again
   * after running out of descriptors. Default {@linkcode sleep} (a timer). The
   * grader passes its own, to see every pause without waiting it out.
   */
  pause?: (ms: number) => Promise<void>;
}

// Helpers you may use (they are not part of the task).

/** The bytes of `a` followed by those of `b`, in a new array. */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Closes `conn` if it is still open. A connection may be closed from two
 * places — its handler, and `server.close()` — and closing one twice throws
 * `BadResource`; that one error means "already closed" and is fine.
 */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** The client's address as `127.0.0.1:50412`, for log lines. */
function peerOf(conn: Deno.Conn): string {
  const addr = conn.remoteAddr as Deno.NetAddr;
  return `${addr.hostname}:${addr.port}`;
}

/**
 * Returns a copy of `bytes` with the ASCII letters `a`–`z` (0x61–0x7a) turned
 * into `A`–`Z` (0x41–0x5a). Every other byte — digits, punctuation, the
 * bytes of `é` or `世`, even bytes that are not valid UTF-8 — is copied
 * unchanged, so the reply has exactly as many bytes as the line.
 *
 * Work on bytes, not text: decoding first turns invalid bytes into `�`, and
 * `"ß".toUpperCase()` is `"SS"`, which changes the length.
 */
export function upperAscii(bytes: Uint8Array): Uint8Array {
  throw new TodoError("upperAscii");
}

/**
 * Serves one client until the connection ends, then closes `conn` (always,
 * exactly once) and says how it ended.
 *
 * - Collect bytes until a `\n`; answer each complete line with `ack-` + the
 *   line upper-cased ({@linkcode upperAscii}), its `\n` included:
 *   `hi\n` → `ack-HI\n`, `hi\r\n` → `ack-HI\r\n`, `\n` → `ack-\n`.
 *   One reply per line, however the bytes arrive: one byte per read, or
 *   several lines in one read.
 * - At end of stream (read returns `null`), answer a last line that has no
 *   `\n` as if it had one (`bye` → `ack-BYE\n`), close, return `"eof"`.
 * - A line longer than {@linkcode MAX_LINE} bytes (complete or still without
 *   its `\n`): write {@linkcode LINE_TOO_LONG} instead, close, return
 *   `"too-long"`.
 * - A client that vanishes is routine, not a crash: `ConnectionReset`,
 *   `BrokenPipe` or `ConnectionAborted` from read or write → close, return
 *   `"reset"`. `Interrupted` or `BadResource` means your server closed the
 *   connection itself (a pending read was cancelled) → return `"closed"`.
 *   Anything else: close and let it propagate.
 *
 * `write()` may write fewer bytes than you give it: loop until all are written.
 * The helpers `concat` and `closeQuietly` above are yours to use.
 */
export async function handleConnection(conn: Deno.Conn): Promise<Ending> {
  throw new TodoError("handleConnection");
}

/**
 * Starts the serial server: one accept loop that serves each client to the
 * end (`await handleConnection(conn)`) before it accepts the next one. A
 * second client can connect — the kernel queues it — but gets no reply until
 * the first one leaves.
 *
 * - Listen on `options.hostname` (default `"127.0.0.1"`), `options.port` (default 0).
 * - One client must never stop the server: an error from `accept()` (a
 *   client that reset while it waited in the queue makes `accept()` throw
 *   `NotConnected`) or from `handleConnection` is logged, and the loop goes on.
 * - Out of descriptors (`isOutOfDescriptors(error)`, from `"workbook"`), the
 *   loop pauses before it accepts again: `options.pause(ms)` (default
 *   {@linkcode sleep}), {@linkcode ACCEPT_PAUSE_MS} first, doubling up to
 *   {@linkcode MAX_ACCEPT_PAUSE_MS}. It logs one warning when the trouble
 *   starts — not one per failed attempt — and once `accept()` works again the
 *   next trouble starts over: a new warning, a pause of ACCEPT_PAUSE_MS.
 * - Log each connect and disconnect (`serialLog.info(...)`), e.g.
 *   `client 127.0.0.1:50412 connected`, `client 127.0.0.1:50412 left (eof)`.
 * - `close()` stops accepting, closes the live connection, and resolves
 *   when the loop has ended.
 */
export function startSerialServer(options: ServerOptions = {}): LineServer {
  throw new TodoError("startSerialServer");
}

/**
 * Starts the task-per-connection server (the Deno way to write Python's
 * thread-per-connection server): the accept loop starts
 * `handleConnection(conn)` *without* awaiting it, so it is back in
 * `accept()` at once and any number of clients are served at the same time.
 *
 * - Listen as {@linkcode startSerialServer} does.
 * - A handler runs on its own, so it needs its own error handling: attach a
 *   `.catch` (or wrap it in an async function with try/catch) — a rejection
 *   nobody handles crashes the whole program. Errors from `accept()` are
 *   logged and the loop goes on; out of descriptors, it pauses and backs off
 *   exactly as {@linkcode startSerialServer} does.
 * - Keep every live connection with its handler's promise (a `Map`), so
 *   `close()` can close them all and wait for the handlers.
 * - Log each connect and disconnect (`concurrentLog.info(...)`).
 * - `close()` stops accepting, closes every live connection, and resolves
 *   when every handler has finished.
 */
export function startConcurrentServer(options: ServerOptions = {}): LineServer {
  throw new TodoError("startConcurrentServer");
}
