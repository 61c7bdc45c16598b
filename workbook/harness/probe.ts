/**
 * The grader's end of a connection: every write and read is recorded in the
 * test's transcript, every wait has a deadline, and a failed expectation says
 * what arrived and what did not.
 *
 * A probe reads in the background from the moment it exists (unless told not
 * to), so arrival times in the transcript are real and a peer never blocks on
 * a full window because the grader was not reading yet.
 *
 * @module
 */
import net from "node:net";
import {
  describeSplit,
  equalBytes,
  indexOfBytes,
  showBytes,
  showDifference,
  splitBytes,
  type SplitMode,
  toBytes,
} from "./bytes.ts";
import { reportMargin } from "./events.ts";
import { addNote, GradeFailure, type NoteOptions } from "./failure.ts";
import type { Transcript } from "./transcript.ts";
import { frozenText, nextTurn, runDeadline, waitUntil } from "./wait.ts";

/**
 * Default time budget of one step, in milliseconds of time the program could
 * run (wait.ts): on a quiet machine, loopback replies take a few ms, so a
 * step that heard nothing in half a second is stuck; on a loaded one the
 * budget stretches by the time the program waited for the CPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STEP_MS } from "./probe.ts";
 *
 * assert.equal(STEP_MS, 500);
 * ```
 */
export const STEP_MS = 500;

/** An address the grader can connect to. */
export type ConnectAddress = { hostname: string; port: number } | { path: string };

/** Options shared by every probe operation; `note` is the advice shown if it fails. */
export interface WaitOptions extends NoteOptions {
  /** The step, in words, for the failure message. */
  step?: string;
  /** Time budget in ms (default {@linkcode STEP_MS}). */
  timeoutMs?: number;
}

/** How a probe's connection ended, if it has. */
export type Ending = "eof" | "reset" | "error" | undefined;

/** Settings every probe gets from its test. */
export interface ProbeContext {
  /** Where the probe records what it sends, receives and sees happen. */
  transcript: Transcript;
  /** Aborted when the test must stop waiting (an uncaught error in learner code). */
  signal: AbortSignal;
  /** The check the probe belongs to: its slow waits are reported as margins (events.ts). */
  check?: string;
}

/**
 * A recorded connection with deadlines. Made by `Grader.connect` or by a
 * grader-side server; suites rarely construct one directly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Probe } from "./probe.ts";
 * import { Transcript } from "./transcript.ts";
 *
 * // "Your server": reads one line, answers it in upper case, closes.
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const serving = listener.accept().then(async (conn) => {
 *   const buffer = new Uint8Array(64);
 *   let line = "";
 *   for (let n; !line.endsWith("\n") && (n = await conn.read(buffer)) !== null;) {
 *     line += new TextDecoder().decode(buffer.subarray(0, n));
 *   }
 *   await conn.write(new TextEncoder().encode(line.toUpperCase()));
 *   conn.close();
 * });
 *
 * const transcript = new Transcript();
 * const signal = new AbortController().signal;
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const client = new Probe(conn, "A", { transcript, signal });
 * await client.send("hello\n", { split: "bytes" });
 * await client.expect("HELLO\n");
 * await client.expectEnd({ cleanly: true });
 * assert.equal(transcript.entries.filter((e) => e.event === "sent").length, 6);
 * await client.close();
 * await serving;
 * listener.close();
 * ```
 *
 * @example In a suite
 * ```ts ignore
 * const client = await t.connect(server.addr, "A");
 * await client.send("hello\n", { split: "bytes" });
 * await client.expect("HELLO\n", { note: "one reply per line, not per read()" });
 * ```
 */
export class Probe {
  /** The connection's name in the transcript and in failures, e.g. `A` or `client 2`. */
  readonly label: string;
  /** The connection itself (rarely needed: use the probe's methods). */
  readonly conn: ProbeConn;
  readonly #ctx: ProbeContext;
  // Received bytes not yet consumed live in #buffer[#start, #end); it grows by
  // doubling, so a large transfer costs linear time, not a copy per arrival.
  #buffer = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #receivedTotal = 0;
  #sentTotal = 0;
  #ending: Ending;
  #endingDetail = "";
  #closed = false;
  #pump?: Promise<void>;
  readonly #listeners = new Set<() => void>();

  /**
   * Wraps `conn` as `label`, recording into `ctx.transcript`; it reads in
   * the background at once unless `read` is false ({@linkcode Probe.startReading}).
   */
  constructor(conn: ProbeConn, label: string, ctx: ProbeContext, options: { read?: boolean } = {}) {
    this.conn = conn;
    this.label = label;
    this.#ctx = ctx;
    if (options.read !== false) this.startReading();
  }

  /** Bytes received from the peer so far (read or not). */
  get receivedTotal(): number {
    return this.#receivedTotal;
  }

  /** Bytes the grader has sent so far. */
  get sentTotal(): number {
    return this.#sentTotal;
  }

  /** How the peer ended the connection, if it has: `eof`, `reset` or `error`. */
  get ending(): Ending {
    return this.#ending;
  }

  /** Received bytes not yet consumed by an expect/read call. */
  get unread(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end);
  }

  #append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#buffer.length) {
      const live = this.#end - this.#start;
      const size = Math.max(4096, 2 * (live + chunk.length));
      const target = size > this.#buffer.length ? new Uint8Array(size) : this.#buffer;
      target.set(this.#buffer.subarray(this.#start, this.#end), 0);
      this.#buffer = target;
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** Starts the background reader (for probes made with `{ read: false }`). */
  startReading(): void {
    this.#pump ??= this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    while (!this.#closed) {
      let n: number | null;
      try {
        n = await this.conn.read(buffer);
      } catch (error) {
        if (this.#closed) break;
        if (error instanceof Deno.errors.ConnectionReset) {
          this.#ending = "reset";
          this.#ctx.transcript.record(this.label, "reset-by-peer");
        } else {
          this.#ending = "error";
          this.#endingDetail = String(error);
          this.#ctx.transcript.record(this.label, "note", { detail: `read failed: ${error}` });
        }
        break;
      }
      if (n === null) {
        this.#ending = "eof";
        this.#ctx.transcript.record(this.label, "eof");
        break;
      }
      const chunk = buffer.slice(0, n);
      this.#receivedTotal += n;
      this.#append(chunk);
      this.#ctx.transcript.record(this.label, "received", { bytes: chunk });
      this.#notify();
    }
    this.#notify();
  }

  #notify() {
    for (const listener of [...this.#listeners]) listener();
  }

  /** What the peer has sent so far, for failure messages. */
  #sofar(): string {
    const got = this.#receivedTotal === 0
      ? "your side had sent 0 bytes"
      : `your side had sent ${this.#receivedTotal} byte(s) in all; of those, the check had not read yet: ${
        showBytes(this.unread)
      }`;
    const end = this.#ending === "eof"
      ? ", then closed its sending side (EOF)"
      : this.#ending === "reset"
      ? ", then reset the connection (RST)"
      : this.#ending === "error"
      ? `, then the read failed: ${this.#endingDetail}`
      : "";
    return got + end;
  }

  /**
   * Waits until `check` returns a value (called now and on every arrival),
   * the connection ends without it, the deadline passes, or the test is interrupted.
   */
  async #waitFor<T>(
    check: () => T | undefined,
    step: string,
    expected: string,
    options: WaitOptions,
  ): Promise<T> {
    const ready = check();
    if (ready !== undefined) return ready;
    const timeoutMs = options.timeoutMs ?? STEP_MS;
    const waited = await waitUntil(() => {
      const value = check();
      if (value !== undefined) return value;
      if (this.#ending !== undefined || this.#closed) {
        throw new GradeFailure({ kind: "mismatch", step, expected, actual: this.#sofar() });
      }
    }, {
      timeoutMs,
      signal: this.#ctx.signal,
      wakeOn: this.#listeners,
      onTime: (usedMs) => {
        if (this.#ctx.check) reportMargin(this.#ctx.check, step, usedMs, timeoutMs);
      },
    });
    if (waited.status === "done") return waited.value;
    if (waited.status === "aborted") throw waited.reason;
    throw new GradeFailure({
      kind: waited.status,
      step,
      expected: `${expected} within ${timeoutMs} ms`,
      actual: waited.status === "frozen"
        ? `${frozenText(timeoutMs, waited.lateMs)}; ${this.#sofar()}`
        : `nothing more arrived in ${timeoutMs} ms; ${this.#sofar()}`,
    });
  }

  #take(n: number): Uint8Array {
    const out = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /**
   * Writes all of `data` (looping over partial writes), split into writes as
   * `split` says (default: one write). Between split writes the grader yields to
   * the event loop so a peer in the same process really sees separate reads.
   */
  async send(
    data: string | Uint8Array,
    options: { split?: SplitMode; step?: string } & NoteOptions = {},
  ): Promise<void> {
    const bytes = toBytes(data);
    const split = options.split ?? "whole";
    const step = options.step ??
      `send ${showBytes(bytes, 60)} ${describeSplit(split)} on ${this.label}`;
    const chunks = splitBytes(bytes, split);
    for (const [i, chunk] of chunks.entries()) {
      let offset = 0;
      while (offset < chunk.length) {
        let n: number;
        try {
          n = await this.conn.write(chunk.subarray(offset));
        } catch (error) {
          const failure = new GradeFailure({
            kind: "mismatch",
            step,
            expected: "the connection to stay open while the grader sends",
            actual: `write failed after ${this.#sentTotal} byte(s): ${error}; ${this.#sofar()}`,
            note: "your side closed or reset the connection before reading everything",
          });
          throw addNote(failure, options);
        }
        this.#ctx.transcript.record(this.label, "sent", {
          bytes: chunk.subarray(offset, offset + n),
        });
        offset += n;
        this.#sentTotal += n;
      }
      if (chunks.length > 1 && i < chunks.length - 1) await nextTurn();
    }
  }

  /** Reads exactly the bytes of `expected` and fails with a caret diff if they differ. */
  async expect(expected: string | Uint8Array, options: WaitOptions = {}): Promise<void> {
    const want = toBytes(expected);
    const step = options.step ?? `read ${showBytes(want, 60)} on ${this.label}`;
    let got: Uint8Array;
    try {
      got = await this.#waitFor(
        () => this.unread.length >= want.length ? this.#take(want.length) : undefined,
        step,
        `the ${want.length} byte(s) ${showBytes(want, 60)}`,
        options,
      );
    } catch (error) {
      // Show what did arrive against what was expected, with the caret.
      if (error instanceof GradeFailure && this.unread.length > 0) {
        error.details.comparison = showDifference(want, this.unread) + "\n" +
          `(${error.details.actual})`;
        error.message = error.render();
      }
      throw addNote(error, options);
    }
    if (!equalBytes(got, want)) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step,
        comparison: showDifference(want, got),
      });
      throw addNote(failure, options);
    }
  }

  /** Reads up to and including `delimiter`; fails past `maxBytes` without it. */
  async readUntil(
    delimiter: string | Uint8Array,
    options: WaitOptions & { maxBytes?: number } = {},
  ): Promise<Uint8Array> {
    const delim = toBytes(delimiter);
    const max = options.maxBytes ?? 1 << 20;
    const step = options.step ?? `read up to ${showBytes(delim)} on ${this.label}`;
    let scanned = 0;
    const got = await this.#waitFor(
      () => {
        const unread = this.unread;
        // Search only what arrived since the last look (each byte is searched once).
        const at = indexOfBytes(unread, delim, Math.max(0, scanned - delim.length + 1));
        if (at >= 0) return this.#take(at + delim.length);
        scanned = unread.length;
        if (unread.length > max) return null;
        return undefined;
      },
      step,
      `bytes ending in ${showBytes(delim)}`,
      options,
    ).catch((error) => {
      throw addNote(error, options);
    });
    if (got === null) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step,
        expected: `${showBytes(delim)} within ${max} bytes`,
        actual: `${this.unread.length} bytes without it: ${showBytes(this.unread, 60)}`,
      });
      throw addNote(failure, options);
    }
    return got;
  }

  /** Reads one `\n`-terminated line and returns it decoded, newline included. */
  async readLine(options: WaitOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readUntil("\n", options));
  }

  /** Reads exactly `n` bytes. */
  async readBytes(n: number, options: WaitOptions = {}): Promise<Uint8Array> {
    return await this.#waitFor(
      () => this.unread.length >= n ? this.#take(n) : undefined,
      options.step ?? `read ${n} bytes on ${this.label}`,
      `${n} bytes`,
      options,
    ).catch((error) => {
      throw addNote(error, options);
    });
  }

  /** Reads until the peer ends the connection; returns everything not yet consumed. */
  async readToEnd(options: WaitOptions = {}): Promise<Uint8Array> {
    const step = options.step ?? `read until your side closes ${this.label}`;
    await this.#waitFor(
      () => this.#ending !== undefined ? true : undefined,
      step,
      "the connection to be closed by your side (EOF)",
      options,
    ).catch((error) => {
      throw addNote(error, options);
    });
    return this.#take(this.unread.length);
  }

  /**
   * Waits for the peer to end the connection with no further bytes.
   * `reset` (RST) counts as an end unless `{ cleanly: true }`.
   */
  async expectEnd(options: WaitOptions & { cleanly?: boolean } = {}): Promise<void> {
    const step = options.step ?? `wait for your side to close ${this.label}`;
    await this.#waitFor(
      () => this.#ending !== undefined || this.unread.length > 0 ? true : undefined,
      step,
      "the connection to be closed by your side (EOF)",
      options,
    ).catch((error) => {
      throw addNote(error, options);
    });
    if (this.unread.length > 0) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step,
        expected: "end of stream, no more bytes",
        actual: `more bytes: ${showBytes(this.unread)}`,
      });
      throw addNote(failure, options);
    }
    if (options.cleanly && this.#ending !== "eof") {
      const failure = new GradeFailure({
        kind: "mismatch",
        step,
        expected: "a clean close (FIN, read returns end of stream)",
        actual: this.#sofar(),
      });
      throw addNote(failure, options);
    }
  }

  /** Waits until at least `n` bytes in all have arrived (read or not). */
  async waitReceived(n: number, options: WaitOptions = {}): Promise<void> {
    await this.#waitFor(
      () => this.#receivedTotal >= n ? true : undefined,
      options.step ?? `wait for ${n} bytes on ${this.label}`,
      `${n} bytes`,
      options,
    ).catch((error) => {
      throw addNote(error, options);
    });
  }

  /** Shuts down the grader's sending side (half-close); reading goes on. */
  async closeWrite(): Promise<void> {
    await this.conn.closeWrite();
    this.#ctx.transcript.record(this.label, "half-close");
  }

  /**
   * Resets the connection (RST, not FIN) the way a crashed client vanishes.
   * Only probes opened with `{ resettable: true }` can: `Deno.Conn` cannot
   * send a reset.
   */
  async reset(): Promise<void> {
    if (!this.conn.reset) throw new Error(`${this.label} was not opened with { resettable: true }`);
    if (this.#closed) return;
    this.#closed = true;
    await this.conn.reset();
    this.#ctx.transcript.record(this.label, "reset");
    this.#notify();
    await this.#pump;
  }

  /** Closes the connection (idempotent) and waits for the background reader to stop. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by a failed write: nothing left to release.
    }
    this.#ctx.transcript.record(this.label, "close");
    this.#notify();
    await this.#pump;
  }
}

/**
 * The part of a connection a {@linkcode Probe} uses: a `Deno.Conn`, or a
 * `node:net` socket seen through {@linkcode ResettableConn} (which can reset).
 */
export interface ProbeConn {
  /** Reads into `buffer`; the number of bytes read, or null at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes`; the number written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Shuts down the sending side (FIN); reading goes on. */
  closeWrite(): Promise<void>;
  /** Closes the connection. */
  close(): void;
  /** This end's address. */
  readonly localAddr: Deno.Addr;
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;
  /** Sends RST and releases the socket; only resettable connections have it. */
  reset?(): Promise<void>;
}

/**
 * A `node:net` socket behind the `Deno.Conn` read/write interface, so a probe
 * can reset it later (`resetAndDestroy()` sets SO_LINGER to 0 and closes).
 * It reads only while a read is pending, like a `Deno.Conn`, so a probe that
 * stops reading still pushes back on the sender.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ResettableConn } from "./probe.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const client = await ResettableConn.connect(listener.addr);
 * const server = await accepted;
 * await client.write(new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(8);
 * assert.equal(await server.read(buffer), 2);
 * await client.reset(); // RST, like a client that crashed
 * await assert.rejects(server.read(buffer), Deno.errors.ConnectionReset);
 * server.close();
 * listener.close();
 * ```
 */
export class ResettableConn implements ProbeConn {
  readonly #socket: net.Socket;
  readonly #closed: Promise<void>;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #failure?: Error;
  #wake?: () => void;
  /** This end's address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    this.localAddr = netAddr(socket.localAddress, socket.localPort);
    this.remoteAddr = netAddr(socket.remoteAddress, socket.remotePort);
    this.#closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.pause();
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(new Uint8Array(chunk));
      socket.pause();
      this.#wake?.();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("error", (error: Error & { code?: string }) => {
      this.#failure = error.code === "ECONNRESET"
        ? new Deno.errors.ConnectionReset(error.message)
        : error;
      this.#wake?.();
    });
    socket.on("close", () => this.#wake?.());
  }

  /** Connects to `address` (rejects like `Deno.connect` when refused). */
  static connect(address: { hostname: string; port: number }): Promise<ResettableConn> {
    const socket = net.connect({ host: address.hostname, port: address.port, allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(new ResettableConn(socket)));
      socket.once("error", (error: Error & { code?: string }) => {
        socket.destroy();
        reject(
          error.code === "ECONNREFUSED" ? new Deno.errors.ConnectionRefused(error.message) : error,
        );
      });
    });
  }

  /** Reads into `buffer` what arrived; null at end of stream; throws ConnectionReset on RST. */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#failure) throw this.#failure;
      if (this.#ended || this.#socket.destroyed) return null;
      const woken = new Promise<void>((resolve) => this.#wake = resolve);
      this.#socket.resume();
      await woken;
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  /** Writes all of `bytes` (resolves once the socket took them). */
  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) =>
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length))
    );
  }

  /** Shuts down the sending side (FIN); reading goes on. */
  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  /** Closes the connection (FIN, or RST if unread bytes remain, as the kernel decides). */
  close(): void {
    this.#socket.destroy();
  }

  /** Sends RST (SO_LINGER 0, then close) and waits until the socket is released. */
  async reset(): Promise<void> {
    if (!this.#socket.destroyed) this.#socket.resetAndDestroy();
    await this.#closed;
  }
}

function netAddr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return { transport: "tcp", hostname: hostname ?? "", port: port ?? 0 };
}

/**
 * Text of an address for transcripts: `127.0.0.1:4000`, `[::1]:4000`, `unix:/tmp/x.sock`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressText } from "./probe.ts";
 *
 * assert.equal(addressText({ hostname: "127.0.0.1", port: 4000 }), "127.0.0.1:4000");
 * assert.equal(addressText({ transport: "tcp", hostname: "::1", port: 4000 }), "[::1]:4000");
 * assert.equal(addressText({ path: "/tmp/x.sock" }), "unix:/tmp/x.sock");
 * ```
 */
export function addressText(addr: Deno.Addr | ConnectAddress): string {
  if ("path" in addr) return `unix:${addr.path}`;
  if ("cid" in addr) return `vsock:${addr.cid}:${addr.port}`;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Connects, retrying while the connection is refused until the deadline:
 * readiness by connect-retry, never by sleeping a fixed time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freePort } from "./loopback.ts";
 * import { addressText, connectWithRetry } from "./probe.ts";
 *
 * // A server that starts listening a little after the grader began to connect.
 * const port = freePort("tcp");
 * let listener: Deno.TcpListener | undefined;
 * setTimeout(() => listener = Deno.listen({ hostname: "127.0.0.1", port }), 20);
 * const conn = await connectWithRetry({ hostname: "127.0.0.1", port }, { timeoutMs: 1000 });
 * assert.equal(addressText(conn.remoteAddr), `127.0.0.1:${port}`);
 * conn.close();
 * listener!.close();
 *
 * // Nobody listening: refused, once the deadline has passed.
 * const nobody = { hostname: "127.0.0.1", port: freePort("tcp") };
 * await assert.rejects(connectWithRetry(nobody, { timeoutMs: 30 }), Deno.errors.ConnectionRefused);
 * ```
 */
export async function connectWithRetry(
  address: ConnectAddress,
  options: { timeoutMs?: number; signal?: AbortSignal; resettable?: boolean } = {},
): Promise<ProbeConn> {
  const deadline = runDeadline(options.timeoutMs ?? STEP_MS);
  let delay = 2;
  try {
    while (true) {
      try {
        if ("path" in address) return await Deno.connect({ transport: "unix", path: address.path });
        return options.resettable
          ? await ResettableConn.connect(address)
          : await Deno.connect({ hostname: address.hostname, port: address.port });
      } catch (error) {
        const retriable = error instanceof Deno.errors.ConnectionRefused ||
          error instanceof Deno.errors.NotFound;
        if (!retriable || deadline.passed() || options.signal?.aborted) throw error;
        await nextTurn(delay);
        delay = Math.min(delay * 2, 50);
      }
    }
  } finally {
    deadline.done();
  }
}

/**
 * Connects with `node:net`, optionally sends bytes, then resets the
 * connection (RST, not FIN) the way a crashed or killed client would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectAndReset } from "./probe.ts";
 * import { Transcript } from "./transcript.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const transcript = new Transcript();
 * await connectAndReset(listener.addr, "crash", transcript, "half a li");
 * assert.deepEqual(transcript.entries.map((e) => e.event), ["connect", "sent", "reset"]);
 * (await accepted).close();
 * listener.close();
 * ```
 */
export async function connectAndReset(
  address: { hostname: string; port: number },
  label: string,
  transcript: Transcript,
  first?: string | Uint8Array,
): Promise<void> {
  const socket = net.connect({ host: address.hostname, port: address.port });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    transcript.record(label, "connect", {
      detail: `${socket.localAddress}:${socket.localPort} → ${addressText(address)}`,
    });
    socket.on(
      "data",
      (chunk: Uint8Array) => transcript.record(label, "received", { bytes: chunk }),
    );
    if (first !== undefined) {
      const bytes = toBytes(first);
      await new Promise<void>((resolve, reject) =>
        socket.write(bytes, (error) => error ? reject(error) : resolve())
      );
      transcript.record(label, "sent", { bytes });
    }
  } finally {
    socket.on("error", () => {/* a reset socket reports its own reset; nothing to do */});
    socket.resetAndDestroy();
    transcript.record(label, "reset");
    await closed;
  }
}
