/**
 * The one wait of the harness: wait for a promise, or for a condition, until
 * a deadline or an abort — and say which of those happened.
 *
 * A deadline is a timer. When that timer fires far too late (more than
 * {@linkcode FROZEN_LOOP_MS} after it was due), the event loop was frozen:
 * code ran for that long without ever awaiting (a CPU loop, a blocking call),
 * which is not the same as a slow peer. The result says `"frozen"` then, so a
 * caller can tell the learner so instead of "nothing happened in time".
 *
 * A deadline counts the time the program could run, not the wall clock: while
 * any wait is pending, a ticker notes how late the event loop gets to its
 * timers ({@linkcode stalledMs}), and a deadline that comes due is put off by
 * the stall it saw (up to three times the deadline in all). On a quiet machine
 * that is nothing, so a hang is reported after the deadline itself; on a
 * machine so loaded that the program barely runs, learner code still gets
 * about the whole deadline to answer.
 *
 * Every wait of the harness (a step's deadline, `eventually`, clean-ups, the
 * probes' reads) is built on {@linkcode waitFor} or {@linkcode waitUntil};
 * they clear their timers and listeners however they end, so a test that used
 * them leaks nothing. Suites use them too, e.g. to give learner code one turn
 * to fail at once: `await waitFor(running, { timeoutMs: 0 })`.
 *
 * @module
 */
import process from "node:process";

/**
 * How late a deadline timer may fire before the wait calls the event loop frozen, in ms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FROZEN_LOOP_MS, waitFor } from "./wait.ts";
 *
 * const start = Date.now();
 * const waiting = waitFor(new Promise(() => {}), { timeoutMs: 1 });
 * while (Date.now() - start < FROZEN_LOOP_MS + 100) {
 *   // a CPU loop: not even the 1 ms deadline can fire
 * }
 * assert.equal((await waiting).status, "frozen");
 * ```
 */
export const FROZEN_LOOP_MS = 1000;

/** How often the stall ticker looks at the clock while a wait is pending, in ms. */
const STALL_TICK_MS = 20;
/** Lateness of one tick that is just timer granularity, in ms. */
const STALL_SLACK_MS = 2;
/** A deadline stretches to at most this many times itself, however loaded the machine. */
const MAX_STRETCH = 3;
let stalled = 0;
let stallUsers = 0;
let stallTicker: ReturnType<typeof setInterval> | undefined;

/**
 * Milliseconds the event loop reached its timers late while the process was
 * not using the CPU — it was waiting for one, on a machine busy with others —
 * summed over the ticks taken while some wait was pending. Lateness from the
 * program's own synchronous work is not a stall. Only differences of it mean
 * anything.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stalledMs, waitFor } from "./wait.ts";
 *
 * const before = stalledMs();
 * const waiting = waitFor(new Promise(() => {}), { timeoutMs: 200 });
 * await new Promise((resolve) => setTimeout(resolve, 30));
 * const start = Date.now();
 * while (Date.now() - start < 120) {
 *   // the program's own work holds the event loop for 120 ms: late timers, but no stall
 * }
 * assert.equal((await waiting).status, "timeout");
 * assert.ok(stalledMs() - before < 60);
 * ```
 */
export function stalledMs(): number {
  return stalled;
}

/**
 * A deadline for a loop that polls by itself: like {@linkcode waitFor}'s, it
 * counts only the time the program could run. Call `done()` when the loop ends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runDeadline } from "./wait.ts";
 *
 * const deadline = runDeadline(30);
 * let looks = 0;
 * try {
 *   while (!deadline.passed()) {
 *     looks++;
 *     await new Promise((resolve) => setTimeout(resolve, 5));
 *   }
 * } finally {
 *   deadline.done();
 * }
 * assert.ok(looks >= 3);
 * ```
 */
export function runDeadline(timeoutMs: number): { passed(): boolean; done(): void } {
  const release = holdStallTicker();
  const start = performance.now();
  const stalledAtStart = stalled;
  return {
    passed: () => {
      const stretch = Math.min(stalled - stalledAtStart, (MAX_STRETCH - 1) * timeoutMs);
      return performance.now() - start - stretch >= timeoutMs;
    },
    done: release,
  };
}

/**
 * Keeps the stall ticker running until the returned function is called. A
 * tick that comes late while the process used the CPU was this program's own
 * work (its code, or the harness's), and does not count: only lateness the
 * process spent waiting for a CPU is a stall.
 */
function holdStallTicker(): () => void {
  if (stallUsers++ === 0) {
    let last = performance.now();
    let cpu = process.cpuUsage();
    stallTicker = setInterval(() => {
      const now = performance.now();
      const used = process.cpuUsage(cpu);
      cpu = process.cpuUsage();
      const late = now - last - STALL_TICK_MS - STALL_SLACK_MS;
      stalled += Math.max(0, late - (used.user + used.system) / 1000);
      last = now;
    }, STALL_TICK_MS);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--stallUsers === 0) clearInterval(stallTicker);
  };
}

/** How a wait ended. */
export type Waited<T> =
  /** The promise resolved (`waitFor`) or the check returned a value (`waitUntil`). */
  | { status: "done"; value: T }
  /** The deadline passed. */
  | { status: "timeout" }
  /** The deadline passed, and its timer fired `lateMs` late: the event loop was frozen. */
  | { status: "frozen"; lateMs: number }
  /** The signal was aborted first (or already), with this reason. */
  | { status: "aborted"; reason: unknown };

/** The limits of a wait. */
export interface DeadlineOptions {
  /** The deadline, in ms from now. */
  timeoutMs: number;
  /** Ends the wait early, as `"aborted"`, when (or if already) aborted. */
  signal?: AbortSignal;
  /**
   * Called when the wait ends in time (`"done"`), with the run time it used:
   * the ms it took, less the time the program waited for a CPU (as the
   * deadline counts it). How close passing code comes to a budget.
   */
  onTime?: (usedMs: number) => void;
}

/** Options of {@linkcode waitUntil}: how it learns that it should look again. */
export interface UntilOptions extends DeadlineOptions {
  /** Look again every `everyMs` ms (a timer each time), for state that announces nothing. */
  everyMs?: number;
  /**
   * Look again whenever the owner of this set calls its callbacks (on every
   * arrival, every change): the wait adds its own while it waits, and takes
   * it out when it is over.
   */
  wakeOn?: Set<() => void>;
}

/**
 * The machinery both waits share: a deadline timer that tells late from
 * frozen, the signal, and one `finish` however the wait ends. `start` begins
 * the work; it gets `finish` and returns what to undo at the end. `lastLook`
 * runs when the deadline fires, before it counts (a condition may hold now).
 */
function deadline<T>(
  options: DeadlineOptions,
  start: (finish: (result: Waited<T> | { error: unknown }) => void) => (() => void) | void,
  lastLook?: () => void,
): Promise<Waited<T>> {
  const { timeoutMs, signal } = options;
  if (signal?.aborted) return Promise.resolve({ status: "aborted", reason: signal.reason });
  return new Promise<Waited<T>>((resolve, reject) => {
    let over = false;
    let undo: (() => void) | void = undefined;
    const release = holdStallTicker();
    const started = performance.now();
    const stalledAtStart = stalled;
    let counted = stalled;
    let budget = (MAX_STRETCH - 1) * timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (result: Waited<T> | { error: unknown }) => {
      if (over) return;
      over = true;
      if ("status" in result && result.status === "done" && options.onTime) {
        const stretch = Math.min(stalled - stalledAtStart, (MAX_STRETCH - 1) * timeoutMs);
        try {
          options.onTime(Math.max(0, performance.now() - started - stretch));
        } catch {
          // A report's trouble is not the wait's: it still ends with its result.
        }
      }
      clearTimeout(timer);
      release();
      signal?.removeEventListener("abort", onAbort);
      undo?.();
      if ("error" in result) reject(result.error);
      else resolve(result);
    };
    const onAbort = () => finish({ status: "aborted", reason: signal!.reason });
    const arm = (ms: number) => {
      const armed = performance.now();
      timer = setTimeout(() => {
        lastLook?.();
        if (over) return;
        const lateMs = performance.now() - armed - ms;
        if (lateMs > FROZEN_LOOP_MS) return finish({ status: "frozen", lateMs });
        // The time the program could not run does not count: learner code gets it back, up to
        // MAX_STRETCH times the deadline in all.
        const owed = Math.min(stalled - counted, budget);
        counted = stalled;
        budget -= owed;
        if (owed >= 1) arm(owed);
        else finish({ status: "timeout" });
      }, ms);
    };
    arm(timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    undo = start(finish);
    if (over) undo?.();
  });
}

/**
 * Waits for `work` to settle, up to `timeoutMs`, or until `signal` aborts.
 * A rejection of `work` (before the wait is over) rejects with that error;
 * after the wait is over it is handled and dropped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { waitFor } from "./wait.ts";
 *
 * const quick = await waitFor(Promise.resolve(7), { timeoutMs: 100 });
 * assert.deepEqual(quick, { status: "done", value: 7 });
 *
 * const never = await waitFor(new Promise(() => {}), { timeoutMs: 10 });
 * assert.equal(never.status, "timeout");
 *
 * const controller = new AbortController();
 * controller.abort(new Error("stop"));
 * const stopped = await waitFor(new Promise(() => {}), {
 *   timeoutMs: 1000,
 *   signal: controller.signal,
 * });
 * assert.equal(stopped.status, "aborted");
 * ```
 */
export function waitFor<T>(work: Promise<T>, options: DeadlineOptions): Promise<Waited<T>> {
  work.catch(() => {}); // a rejection that comes after the wait (or after an abort) is dropped
  return deadline<T>(options, (finish) => {
    work.then((value) => finish({ status: "done", value }), (error) => finish({ error }));
  });
}

/**
 * Waits until `check()` returns something other than `undefined`, and returns
 * that. Looks once at the start, then whenever a callback of `wakeOn` runs
 * and/or every `everyMs`, and one last time when the deadline fires. A throw
 * from `check` ends the wait with that error. An already aborted `signal` ends
 * it before the first look.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { waitUntil } from "./wait.ts";
 *
 * let count = 0;
 * const ticker = setInterval(() => count++, 1);
 * const reached = await waitUntil(() => count >= 3 ? count : undefined, {
 *   timeoutMs: 1000,
 *   everyMs: 1,
 * });
 * clearInterval(ticker);
 * assert.equal(reached.status, "done");
 *
 * const listeners = new Set<() => void>();
 * let ready = false;
 * setTimeout(() => {
 *   ready = true;
 *   for (const wake of listeners) wake();
 * }, 5);
 * const woken = await waitUntil(() => ready || undefined, { timeoutMs: 1000, wakeOn: listeners });
 * assert.deepEqual(woken, { status: "done", value: true });
 * assert.equal(listeners.size, 0);
 * ```
 */
export function waitUntil<T>(
  check: () => T | undefined,
  options: UntilOptions,
): Promise<Waited<T>> {
  let look = () => {};
  return deadline<T>(options, (finish) => {
    look = () => {
      let value: T | undefined;
      try {
        value = check();
      } catch (error) {
        return finish({ error });
      }
      if (value !== undefined) finish({ status: "done", value });
    };
    let poll: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const every = options.everyMs;
    const schedule = () => {
      poll = setTimeout(() => {
        look();
        if (!stopped) schedule();
      }, every);
    };
    const wake = () => look();
    options.wakeOn?.add(wake);
    if (every !== undefined) schedule();
    look();
    return () => {
      stopped = true;
      clearTimeout(poll);
      options.wakeOn?.delete(wake);
    };
  }, () => look());
}

/**
 * Runs `fn` (the grader's side of a conversation) while learner code runs in
 * `running`: if `running` rejects first (not implemented, a throw), that is
 * the failure, not a grader wait that times out later. `running` resolving
 * ends nothing: `fn` goes on. A rejection of `running` after `fn` settled is
 * left to whoever awaits `running`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { whileRunning } from "./wait.ts";
 *
 * const crashing = Promise.reject(new Error("not implemented"));
 * crashing.catch(() => {}); // awaited elsewhere
 * await assert.rejects(
 *   whileRunning(crashing, () => new Promise(() => {})),
 *   /not implemented/,
 * );
 * assert.equal(await whileRunning(Promise.resolve(), () => Promise.resolve(7)), 7);
 * ```
 */
export async function whileRunning<T>(
  running: Promise<unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  const failed = running.then(() => new Promise<never>(() => {}));
  failed.catch(() => {}); // reported by whoever awaits `running`, if fn settled first
  return await Promise.race([fn(), failed]);
}

/**
 * One turn of the event loop: a timer of `ms` (default 0), so timers and I/O
 * callbacks that were due get to run — unlike `await Promise.resolve()`, which
 * continues before any of them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextTurn } from "./wait.ts";
 *
 * let fired = false;
 * setTimeout(() => fired = true, 0);
 * await Promise.resolve();
 * assert.equal(fired, false);
 * await nextTurn();
 * assert.equal(fired, true);
 * ```
 */
export function nextTurn(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Words for a `"frozen"` wait, for the `actual:` of a failure: how late the
 * deadline fired and what that means.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frozenText } from "./wait.ts";
 *
 * assert.match(frozenText(2000, 1500), /2000 ms deadline could only fire 3500 ms later/);
 * ```
 */
export function frozenText(timeoutMs: number, lateMs: number): string {
  return `the grader's ${timeoutMs} ms deadline could only fire ${
    Math.round(lateMs + timeoutMs)
  } ms later: code that never awaited (a CPU loop, a blocking call) froze the program meanwhile`;
}
