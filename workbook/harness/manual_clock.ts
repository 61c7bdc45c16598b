/**
 * A clock that moves only when a test says so. Lesson code that takes its time
 * and its timers from an injected clock (`now`, `setTimeout`, `setInterval`
 * and their `clear…`) can then be driven through minutes of heartbeats,
 * expiry sweeps and deadlines in a few milliseconds of real time, with no
 * sleeps and no timing luck.
 *
 * {@linkcode ManualClock.advance} runs every timer that falls due inside the
 * step, in time order, with `now()` set to each timer's due time while its
 * callback runs — exactly what a real clock would have done, minus the waiting.
 *
 * @module
 */

/** One scheduled callback. */
interface ScheduledTimer {
  id: number;
  due: number;
  /** Period of an interval timer; undefined for a one-shot timeout. */
  every?: number;
  fn: () => void;
  /** Tie-breaker: timers due at the same moment run in the order they were scheduled. */
  order: number;
}

/** A timer as {@linkcode ManualClock.timers} lists it. */
export interface PendingTimer {
  /** The id `setTimeout`/`setInterval` returned. */
  id: number;
  /** When it fires next, on the clock's scale. */
  due: number;
  /** Its period, for interval timers. */
  every?: number;
}

/** More callbacks than this in one advance means a timer that reschedules itself forever. */
const MAX_FIRINGS_PER_ADVANCE = 10_000;

/**
 * A fake clock with the shape of the lesson's `Clock` interface. Methods are
 * bound, so `const { now } = clock` and `setInterval: clock.setInterval` work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./manual_clock.ts";
 *
 * const clock = new ManualClock();
 * const beats: number[] = [];
 * const { setInterval, setTimeout, clearInterval } = clock;
 * const beat = setInterval(() => beats.push(clock.now()), 30);
 * setTimeout(() => clearInterval(beat), 75);
 * assert.equal(clock.advance(100), 3); // beats at 30 and 60, the timeout at 75
 * assert.deepEqual(beats, [30, 60]);
 * assert.equal(clock.now(), 100);
 * assert.equal(clock.pending, 0);
 * ```
 */
export class ManualClock {
  #now: number;
  #nextId = 1;
  #order = 0;
  readonly #timers = new Map<number, ScheduledTimer>();

  /**
   * A clock that reads `start` until it is advanced.
   *
   * @param start the reading of `now()` before the first advance (default 0).
   */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current reading, in milliseconds. */
  now = (): number => this.#now;

  /** Runs `fn` once, `ms` from now (negative or NaN counts as 0). */
  setTimeout = (fn: () => void, ms: number): number => this.#schedule(fn, ms, undefined);

  /** Runs `fn` every `ms` (at least 1 ms), first `ms` from now. */
  setInterval = (fn: () => void, ms: number): number =>
    this.#schedule(fn, ms, Math.max(1, finite(ms)));

  /** Cancels a timeout or an interval; unknown ids and `undefined` are ignored. */
  clearTimeout = (id: unknown): void => {
    if (typeof id === "number") this.#timers.delete(id);
  };

  /** Same as {@linkcode ManualClock.clearTimeout}: one id space, as in browsers and Deno. */
  clearInterval = (id: unknown): void => this.clearTimeout(id);

  /** How many timers are scheduled. */
  get pending(): number {
    return this.#timers.size;
  }

  /** The scheduled timers, soonest first. */
  timers(): PendingTimer[] {
    return [...this.#timers.values()]
      .sort(byDue)
      .map(({ id, due, every }) => every === undefined ? { id, due } : { id, due, every });
  }

  /**
   * Moves the clock forward by `ms`, running every callback that falls due on
   * the way (including timers those callbacks schedule, if due in time).
   * A callback that throws stops the advance and the error propagates; the
   * clock then reads that callback's due time.
   *
   * @returns how many callbacks ran
   */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`advance() needs a duration ≥ 0, got ${ms}`);
    const end = this.#now + ms;
    let fired = 0;
    while (true) {
      const next = this.#nextDue(end);
      if (!next) break;
      if (++fired > MAX_FIRINGS_PER_ADVANCE) {
        throw new Error(
          `more than ${MAX_FIRINGS_PER_ADVANCE} timer callbacks in one advance of ${ms} ms: ` +
            "a timer keeps rescheduling itself with (almost) no delay",
        );
      }
      this.#now = next.due;
      if (next.every === undefined) this.#timers.delete(next.id);
      else {
        next.due += next.every;
        next.order = this.#order++;
      }
      next.fn();
    }
    this.#now = end;
    return fired;
  }

  #schedule(fn: () => void, ms: number, every: number | undefined): number {
    if (typeof fn !== "function") throw new TypeError("a timer needs a callback function");
    const id = this.#nextId++;
    const delay = every ?? Math.max(0, finite(ms));
    this.#timers.set(id, { id, due: this.#now + delay, every, fn, order: this.#order++ });
    return id;
  }

  #nextDue(end: number): ScheduledTimer | undefined {
    let best: ScheduledTimer | undefined;
    for (const timer of this.#timers.values()) {
      if (timer.due <= end && (!best || byDue(timer, best) < 0)) best = timer;
    }
    return best;
  }
}

function byDue(a: ScheduledTimer, b: ScheduledTimer): number {
  return a.due - b.due || a.order - b.order;
}

function finite(ms: number): number {
  return Number.isFinite(ms) ? ms : 0;
}
