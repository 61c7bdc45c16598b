/**
 * Threads that keep a suite alive when learner code freezes the main thread.
 *
 * A synchronous FFI call that blocks (`accept` or `read` on a descriptor
 * without O_NONBLOCK) or a loop that never yields to the event loop stops
 * every timer, promise and connection of the program — including the
 * grader's deadlines. Nothing on the main thread can end it. Two helpers run
 * on a worker thread instead:
 *
 * - {@linkcode FreezeGuard}: notices that the main thread stopped ticking and
 *   shuts down the sockets of one port, so the stuck learner code gets an
 *   answer (EOF, EINVAL) and returns. The suite then reports the freeze by
 *   name instead of hanging until the run's deadline.
 * - {@linkcode clientInThread}: a TCP client that talks to a server whose
 *   main thread is blocked (the only kind of client a blocking server on the
 *   main thread can serve).
 *
 * Linux only (the rescue calls libc's `getsockname`/`shutdown`); needs
 * `--allow-ffi` and net access to 127.0.0.1, as the I/O model lessons have.
 *
 * @module
 */
import type { Transcript } from "./transcript.ts";

const WORKER_URL = new URL("./freeze_guard_worker.js", import.meta.url);

// Slots of the shared Int32Array (keep in step with freeze_guard_worker.js).
const TICKS = 0;
const RESCUED = 1;
const STOP = 3;

/** How often the main thread ticks. */
const TICK_MS = 20;

/** How long a worker may take to start before the helper gives up. */
const START_MS = 10_000;

/** Options of {@linkcode FreezeGuard.start}. */
export interface FreezeGuardOptions {
  /** Local port whose sockets (listener and accepted connections) are shut down on a freeze. */
  port: number;
  /** How long the main thread may stop ticking before the rescue (default 1500 ms). */
  afterMs?: number;
}

function startWorker(): Worker {
  return new Worker(WORKER_URL, { type: "module", name: "freeze-guard" });
}

/** Waits for the worker's first message of `kind`, or fails after `timeoutMs`. */
function nextMessage<T>(worker: Worker, kind: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      worker.removeEventListener("message", onMessage);
      reject(new Error(`the grader's worker thread sent no "${kind}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (event: MessageEvent) => {
      if (event.data?.kind !== kind) return;
      clearTimeout(timer);
      worker.removeEventListener("message", onMessage);
      resolve(event.data as T);
    };
    worker.addEventListener("message", onMessage);
  });
}

/**
 * Watches the main thread's event loop from a worker thread. While it runs,
 * a timer on the main thread bumps a shared counter every 20 ms; if the
 * counter stops for `afterMs`, the worker shuts down every socket bound to
 * `port`, once. Read {@linkcode FreezeGuard.rescued} after the learner code
 * returned to know whether that happened.
 *
 * @example A guard that is not needed stays quiet
 * ```ts
 * import assert from "node:assert/strict";
 * import { FreezeGuard } from "./freeze_guard.ts";
 * import { nextTurn } from "./wait.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const guard = await FreezeGuard.start({ port: listener.addr.port, afterMs: 500 });
 * for (let i = 0; i < 5; i++) await nextTurn(10); // the event loop keeps turning
 * assert.equal(guard.afterMs, 500);
 * assert.equal(guard.rescued, false);
 * assert.ok(guard.longestFreezeMs < 500);
 * await guard.stop();
 * listener.close();
 * ```
 *
 * @example The rescue of a blocking accept (libc through FFI; see freeze_guard_test.ts)
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { accept, close, ErrnoError, listenTcp } from "../ffi/libc.ts";
 * import { FreezeGuard } from "./freeze_guard.ts";
 *
 * const listener = listenTcp(); // blocking
 * const guard = await FreezeGuard.start({ port: listener.port, afterMs: 500 });
 * assert.throws(() => accept(listener.fd), ErrnoError); // blocked until the guard shut it down
 * assert.equal(guard.rescued, true);
 * await guard.stop();
 * close(listener.fd);
 * ```
 */
export class FreezeGuard {
  /** The freeze length that triggers the rescue. */
  readonly afterMs: number;
  readonly #worker: Worker;
  readonly #slots: Int32Array;
  readonly #ticker: ReturnType<typeof setInterval>;
  #lastTick = performance.now();
  #longestGap = 0;
  #stopped = false;

  private constructor(worker: Worker, slots: Int32Array, afterMs: number) {
    this.#worker = worker;
    this.#slots = slots;
    this.afterMs = afterMs;
    // A first tick now: the worker counts a freeze from when it sees the counter move, so
    // the time the "ready" message took to arrive (long on a loaded machine) is not counted.
    Atomics.add(this.#slots, TICKS, 1);
    this.#ticker = setInterval(() => {
      const now = performance.now();
      this.#longestGap = Math.max(this.#longestGap, now - this.#lastTick);
      this.#lastTick = now;
      Atomics.add(this.#slots, TICKS, 1);
    }, TICK_MS);
  }

  /** Starts the watching thread and the main thread's ticks. */
  static async start(options: FreezeGuardOptions): Promise<FreezeGuard> {
    const afterMs = options.afterMs ?? 1500;
    const slots = new Int32Array(new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT));
    const worker = startWorker();
    const ready = nextMessage(worker, "ready", START_MS);
    worker.postMessage({ kind: "guard", shared: slots.buffer, port: options.port, afterMs });
    try {
      await ready;
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return new FreezeGuard(worker, slots, afterMs);
  }

  /** True once the worker found the main thread frozen and shut the port's sockets down. */
  get rescued(): boolean {
    return Atomics.load(this.#slots, RESCUED) === 1;
  }

  /** The longest the main thread went without running a timer so far, in ms. */
  get longestFreezeMs(): number {
    return Math.round(Math.max(this.#longestGap, performance.now() - this.#lastTick));
  }

  /** Stops the ticks and the thread (idempotent). */
  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      clearInterval(this.#ticker);
      Atomics.store(this.#slots, STOP, 1);
      this.#worker.terminate();
    }
    return Promise.resolve();
  }
}

/** One event seen by {@linkcode clientInThread}, timed from its start. */
export interface ThreadClientEvent {
  /** When, in ms since the client started (on its own thread's clock). */
  atMs: number;
  /** What happened, named like a transcript's events. */
  event: "connect" | "sent" | "half-close" | "received" | "eof" | "note";
  /** The bytes sent or received. */
  bytes?: Uint8Array;
  /** Words on the event (an error, an address). */
  detail?: string;
}

/** What {@linkcode clientInThread} saw. */
export interface ThreadClientResult {
  /** `eof`: the server closed after answering; `timeout`: it did not within the time; `error`. */
  outcome: "eof" | "timeout" | "error";
  /** Every byte received, in order. */
  received: Uint8Array;
  /** Everything the client saw, in order. */
  events: ThreadClientEvent[];
}

/** A client running on its own thread; await {@linkcode ThreadClient.result}. */
export interface ThreadClient {
  /** Resolves when the client has finished (end of stream, timeout or error). */
  result: Promise<ThreadClientResult>;
  /** Ends the thread (idempotent); call it in a clean-up. */
  stop(): void;
}

/**
 * Starts a TCP client on a worker thread: connect to 127.0.0.1:`port`, send
 * `payload`, half-close, read until end of stream (or `timeoutMs`). It works
 * while the main thread is blocked, so it can be the peer of a blocking
 * server that runs on the main thread. Optionally copies its events into a
 * transcript (with the thread's own times) once it is done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clientInThread } from "./freeze_guard.ts";
 * import { Transcript } from "./transcript.ts";
 *
 * // An echo server; a lesson's would block the main thread, which the thread client survives.
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const transcript = new Transcript();
 * const payload = new TextEncoder().encode("ping\n");
 * const client = clientInThread({ port: listener.addr.port, payload, transcript, label: "T" });
 * const conn = await listener.accept();
 * const buffer = new Uint8Array(64);
 * let got = 0;
 * for (let n; (n = await conn.read(buffer.subarray(got))) !== null;) got += n; // to its half-close
 * await conn.write(buffer.subarray(0, got));
 * conn.close();
 * const result = await client.result;
 * assert.equal(result.outcome, "eof");
 * assert.deepEqual(result.received, payload);
 * assert.ok(transcript.entries.some((e) => e.conn === "T" && e.event === "half-close"));
 * client.stop();
 * listener.close();
 * ```
 */
export function clientInThread(options: {
  port: number;
  payload: Uint8Array;
  timeoutMs?: number;
  transcript?: Transcript;
  label?: string;
}): ThreadClient {
  const worker = startWorker();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    worker.terminate();
  };
  const timeoutMs = options.timeoutMs ?? 3000;
  const done = nextMessage<{ outcome: ThreadClientResult["outcome"]; events: ThreadClientEvent[] }>(
    worker,
    "client",
    START_MS + timeoutMs,
  );
  worker.postMessage({
    kind: "client",
    port: options.port,
    payload: options.payload,
    timeoutMs,
  });
  const result = done.then(({ outcome, events }) => {
    const label = options.label ?? "thread client";
    for (const e of events) {
      options.transcript?.record(label, e.event === "eof" ? "eof" : e.event, {
        bytes: e.bytes,
        detail: `${e.detail ? `${e.detail} ` : ""}(+${
          e.atMs.toFixed(1)
        } ms on the client's thread)`,
      });
    }
    const chunks = events.filter((e) => e.event === "received").map((e) => e.bytes!);
    const received = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      received.set(chunk, offset);
      offset += chunk.length;
    }
    stop();
    return { outcome, events, received };
  });
  result.catch(stop);
  return { result, stop };
}
