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

/** Something to log to: a LogTape logger fits. */
export interface AcceptLog {
  warn(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
}

/** True when `error` says the process (EMFILE) or the system (ENFILE) is out of descriptors. */
export function isOutOfDescriptors(error: unknown): boolean {
  return error instanceof Error && /os error 2[34]\b|Too many open files/.test(error.message);
}

/** True when `accept()` failed because the listener was closed. */
export function isListenerClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** True when the connection being accepted was reset or aborted while it waited. */
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

/** Options of {@linkcode acceptEach}. */
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
 * import { acceptEach } from "workbook";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const loop = acceptEach(listener, (conn) => conn.close());
 * listener.close();
 * await loop; // resolves once the listener is closed
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
