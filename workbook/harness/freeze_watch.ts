/**
 * An early verdict for a frozen check. A check whose learner code never
 * awaits stops every timer of the suite's process, the step deadlines
 * included; only deno test's whole-check budget ends it, seconds later. A
 * worker thread watches a counter the main thread bumps while a check runs:
 * when it stops for {@linkcode FREEZE_AFTER_MS}, the worker writes the
 * check's "frozen" verdict to the grading channel (events.ts) right away, so
 * the runner shows the failure while deno test still waits.
 *
 * A check that merely works hard never stops the counter for that long: the
 * harness already calls a timer more than a second late a frozen loop.
 *
 * @module
 */
import { EVENTS_ENV } from "./events.ts";
import { readEnv } from "./target.ts";

/**
 * How long the main thread may run no timer before the check is called frozen, in ms:
 * longer than `FROZEN_LOOP_MS` (wait.ts), so a shorter freeze is left to the step's own
 * "frozen" verdict.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FREEZE_AFTER_MS } from "./freeze_watch.ts";
 * import { FROZEN_LOOP_MS } from "./wait.ts";
 *
 * assert.ok(FREEZE_AFTER_MS > FROZEN_LOOP_MS);
 * ```
 */
export const FREEZE_AFTER_MS = 1200;

const TICK_MS = 100;

/**
 * The watch of one suite process: started once, told when each check starts
 * and ends and which step runs (suite.ts does all three).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EVENTS_ENV } from "./events.ts";
 * import { FreezeWatch } from "./freeze_watch.ts";
 *
 * // Without a grading channel to report on, there is nothing to watch for.
 * const before = Deno.env.get(EVENTS_ENV);
 * Deno.env.delete(EVENTS_ENV);
 * assert.equal(FreezeWatch.start(), undefined);
 * if (before !== undefined) Deno.env.set(EVENTS_ENV, before);
 * ```
 */
export class FreezeWatch {
  readonly #worker: Worker;
  readonly #ticks: Int32Array;
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(worker: Worker, ticks: Int32Array) {
    this.#worker = worker;
    this.#ticks = ticks;
  }

  /**
   * Starts the watch when the runner follows a grading channel (and not
   * otherwise: a plain `deno test` run has nobody to tell early).
   */
  static start(): FreezeWatch | undefined {
    const eventsPath = readEnv(EVENTS_ENV);
    if (!eventsPath) return undefined;
    try {
      const shared = new SharedArrayBuffer(4);
      const worker = new Worker(new URL("./freeze_watch_worker.js", import.meta.url), {
        type: "module",
        name: "freeze-watch",
      });
      worker.postMessage({ kind: "start", shared, afterMs: FREEZE_AFTER_MS, eventsPath });
      return new FreezeWatch(worker, new Int32Array(shared));
    } catch {
      return undefined; // no worker here: the check's budget still ends a freeze
    }
  }

  /** A check begins: tick while it runs. */
  checkStarted(check: string): void {
    this.#worker.postMessage({ kind: "check", check });
    this.#timer = setInterval(() => Atomics.add(this.#ticks, 0, 1), TICK_MS);
  }

  /** A step of the running check begins (named in the early verdict). */
  step(step: string): void {
    this.#worker.postMessage({ kind: "step", step });
  }

  /** The check is over: stop ticking (before deno test's sanitizers look at timers). */
  checkEnded(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#worker.postMessage({ kind: "check", check: null });
  }
}
