/**
 * The accept loop every given lesson program uses, with the rules lesson 03
 * teaches for what `accept()` may throw:
 *
 * - the listener was closed (BadResource, Interrupted): the loop ends;
 * - a client reset while it waited in the accept queue (ConnectionReset,
 *   ConnectionAborted, NotConnected): that client is gone, the next is served;
 * - the process is out of descriptors (EMFILE, "Too many open files", or
 *   the system's ENFILE): the connection stays queued in the kernel, so the
 *   loop pauses — 10 ms, doubling up to 1 s — and tries again, logging once
 *   per episode instead of spinning and flooding the log. It recovers by
 *   itself once connections close.
 *
 * @module
 */

/**
 * Something to log to: a LogTape logger fits (see `programLogger`).
 *
 * @example Collect what the accept loop says
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AcceptLog } from "workbook";
 *
 * const lines: string[] = [];
 * const log: AcceptLog = {
 *   warn: (message) => lines.push(`WRN ${message}`),
 *   info: (message) => lines.push(`INF ${message}`),
 * };
 * log.warn("out of file descriptors: pausing accept until connections close ({error})");
 * assert.equal(lines.length, 1);
 * ```
 */
export interface AcceptLog {
  /** Logs a problem: accepting paused, or a handler failed. */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Logs a recovery: accepting again. */
  info(message: string, properties?: Record<string, unknown>): void;
}

/**
 * True when `error` says the process (EMFILE) or the system (ENFILE) is out of descriptors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isOutOfDescriptors } from "workbook";
 *
 * assert.ok(isOutOfDescriptors(new Error("Too many open files (os error 24)")));
 * assert.ok(isOutOfDescriptors(new Error("accept: os error 23")));
 * assert.ok(!isOutOfDescriptors(new Deno.errors.ConnectionReset("reset")));
 * ```
 */
export function isOutOfDescriptors(error: unknown): boolean {
  return error instanceof Error && /os error 2[34]\b|Too many open files/.test(error.message);
}

/**
 * True when `accept()` failed because the listener was closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isListenerClosed } from "workbook";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepting = listener.accept();
 * listener.close();
 * await assert.rejects(accepting, (error) => isListenerClosed(error));
 * ```
 */
export function isListenerClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/**
 * True when the connection being accepted was reset or aborted while it waited.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isGoneBeforeAccept } from "workbook";
 *
 * assert.ok(isGoneBeforeAccept(new Deno.errors.ConnectionAborted("aborted")));
 * assert.ok(!isGoneBeforeAccept(new Deno.errors.BadResource("closed")));
 * ```
 */
export function isGoneBeforeAccept(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}

/**
 * The first pause of accepting, in milliseconds, once `accept()` fails because
 * the process is out of file descriptors; each further failure of the same
 * shortage doubles the pause, up to {@linkcode MAX_ACCEPT_PAUSE_MS}. Every
 * server of the workbook (given or written by the learner) uses these two.
 */
export const ACCEPT_PAUSE_MS = 10;

/** The longest pause of accepting while the process is out of descriptors. */
export const MAX_ACCEPT_PAUSE_MS = 1000;

/**
 * Resolves after `ms` milliseconds: a server's default way to pause.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sleep } from "workbook";
 *
 * const started = performance.now();
 * await sleep(5);
 * assert.ok(performance.now() - started >= 4);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Options of {@linkcode acceptEach}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AcceptOptions, programLogger } from "workbook";
 *
 * const options: AcceptOptions = { log: programLogger("server"), pauseMs: 5, maxPauseMs: 200 };
 * assert.ok(options.pauseMs! <= options.maxPauseMs!);
 * ```
 */
export interface AcceptOptions {
  /** Where to say that accepting paused and resumed. */
  log?: AcceptLog;
  /** First pause when out of descriptors (default {@linkcode ACCEPT_PAUSE_MS}); it doubles up to `maxPauseMs`. */
  pauseMs?: number;
  /** Longest pause (default {@linkcode MAX_ACCEPT_PAUSE_MS}). */
  maxPauseMs?: number;
}

/**
 * Accepts connections until the listener is closed and hands each to
 * `handle` (whose promise, if any, is not awaited: one slow client must not
 * hold up the next; its rejection is logged). Resolves when the listener is
 * closed; rejects only on an error none of the rules above explains.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptEach } from "workbook";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served: number[] = [];
 * const loop = acceptEach(listener, async (conn) => {
 *   served.push((conn.remoteAddr as Deno.NetAddr).port);
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   conn.close();
 * });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const reply = new Uint8Array(16);
 * const n = await client.read(reply);
 * assert.equal(new TextDecoder().decode(reply.subarray(0, n!)), "hello\n");
 * client.close();
 * listener.close();
 * await loop; // resolves once the listener is closed
 * assert.deepEqual(served, [client.localAddr.port]);
 * ```
 */
export async function acceptEach(
  listener: Deno.Listener,
  handle: (conn: Deno.Conn) => unknown,
  options: AcceptOptions = {},
): Promise<void> {
  const first = options.pauseMs ?? ACCEPT_PAUSE_MS;
  const longest = options.maxPauseMs ?? MAX_ACCEPT_PAUSE_MS;
  let pause = 0;
  let failures = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isListenerClosed(error)) return;
      if (isGoneBeforeAccept(error)) continue;
      if (!isOutOfDescriptors(error)) throw error;
      if (failures++ === 0) {
        options.log?.warn(
          "out of file descriptors: pausing accept until connections close ({error})",
          {
            error: error instanceof Error ? error.message : String(error),
          },
        );
      }
      pause = Math.min(pause ? pause * 2 : first, longest);
      await sleep(pause);
      continue;
    }
    if (failures > 0) {
      options.log?.info("accepting again after {failures} failed attempts", { failures });
      failures = 0;
      pause = 0;
    }
    try {
      const handled = handle(conn);
      if (handled instanceof Promise) {
        handled.catch((error) => options.log?.warn("a connection failed: {error}", { error }));
      }
    } catch (error) {
      options.log?.warn("a connection failed: {error}", { error });
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
