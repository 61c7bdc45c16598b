/**
 * Grading an accept loop that runs out of descriptors: the pauses the docs
 * prescribe ({@linkcode expectedBackoff}), and a `pause` to hand to learner
 * code that records how it is used ({@linkcode recordPauses}).
 *
 * @module
 */
import type { Grader } from "./grader.ts";
import { type LogRecord, showLogs } from "./logs.ts";
import type { Transcript } from "./transcript.ts";

/** The first pause after a failed accept, in ms (the docs' ACCEPT_PAUSE_MS). */
const FIRST_PAUSE_MS = 10;
/** The longest pause, in ms (the docs' MAX_ACCEPT_PAUSE_MS). */
const MAX_PAUSE_MS = 1000;

/**
 * The pauses the docs prescribe after `failures` failed accepts in a row:
 * 10 ms, doubling each time, at most 1000 ms. (The harness's own copy of the
 * contract, on purpose: a suite does not grade the toolkit with itself.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expectedBackoff } from "./backoff.ts";
 *
 * assert.deepEqual(expectedBackoff(3), [10, 20, 40]);
 * assert.deepEqual(expectedBackoff(9).slice(-3), [640, 1000, 1000]);
 * ```
 */
export function expectedBackoff(failures: number): number[] {
  return Array.from(
    { length: failures },
    (_, i) => Math.min(FIRST_PAUSE_MS * 2 ** i, MAX_PAUSE_MS),
  );
}

/** One call of a recorded pause: the ms asked for, and `snapshot()` around it. */
export interface PauseCall<S> {
  /** The pause learner code asked for, in ms. */
  ms: number;
  /** `snapshot()` when the pause began. */
  before: S;
  /** `snapshot()` when the pause ended; unset while it runs. */
  after?: S;
}

/** A recording `pause` and its calls (see {@linkcode recordPauses}). */
export interface PauseRecorder<S> {
  /** Hand this to learner code as its `pause(ms)`. */
  pause(ms: number): Promise<void>;
  /** Every call so far, oldest first; a suite may empty it (`calls.length = 0`) between episodes. */
  readonly calls: PauseCall<S>[];
}

/**
 * A `pause(ms)` for learner code that records each call instead of sleeping:
 * it notes the call in the transcript ("your server calls pause(10)"), takes
 * `snapshot()` (counts the suite cares about: accept calls, log lines) when
 * the pause begins and when it ends, and ends after a 1 ms timer whatever
 * `ms` was — so a check of a 1 s back-off takes no second, yet the pause is a
 * real turn of the event loop. Pauses still running when the check ends are
 * ended then. `caller` names the call in the transcript (default `pause`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordPauses } from "./backoff.ts";
 * import { Transcript } from "./transcript.ts";
 *
 * let accepts = 0;
 * const cleanups: (() => unknown)[] = [];
 * const t = { transcript: new Transcript(), defer: (fn: () => unknown) => void cleanups.push(fn) };
 * const pauses = recordPauses(t, { snapshot: () => ({ accepts }) });
 * const pausing = pauses.pause(1000);
 * accepts++; // an accept() while the pause runs: a loop that did not await it
 * await pausing;
 * const [call] = pauses.calls;
 * assert.equal(call.ms, 1000);
 * assert.equal(call.after!.accepts - call.before.accepts, 1);
 * for (const fn of cleanups) await fn();
 * ```
 */
export function recordPauses<S>(
  t: { transcript: Transcript; defer(fn: () => unknown): void },
  options: { snapshot: () => S; caller?: string },
): PauseRecorder<S> {
  const calls: PauseCall<S>[] = [];
  const running = new Map<ReturnType<typeof setTimeout>, () => void>();
  t.defer(() => {
    for (const [timer, end] of running) {
      clearTimeout(timer);
      end();
    }
  });
  const caller = options.caller ?? "pause";
  return {
    calls,
    pause(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const call: PauseCall<S> = { ms, before: options.snapshot() };
        calls.push(call);
        t.transcript.record("grader", "note", { detail: `your server calls ${caller}(${ms})` });
        const end = () => {
          running.delete(timer);
          call.after = options.snapshot();
          resolve();
        };
        const timer = setTimeout(end, 1);
        running.set(timer, end);
      });
    },
  };
}

/** One episode of failed calls, as {@linkcode judgeBackoffEpisode} grades it. */
export interface BackoffEpisode<S> {
  /** The episode's pauses, as {@linkcode recordPauses} recorded them. */
  calls: readonly PauseCall<S>[];
  /** How many calls failed with EMFILE in the episode. */
  failures: number;
  /** Which episode, for the steps' words: "first", "second". */
  which: string;
  /** What the lesson calls an episode (default "episode"; lesson 6 says "shortage"). */
  episode?: string;
  /** The call that failed, as learner code makes it: "accept()", "getRequest()". */
  failing: string;
  /** The pause as learner code calls it: "pause", "options.pause", "this.pause". */
  pause: string;
  /** How many failing calls learner code made while `call` ran (0 when it awaited it). */
  callsDuring(call: PauseCall<S>): number;
  /** How many failing calls were made, in words, for a loop that never paused. */
  callsMade(): string;
  /** What learner code should have done instead of calling during a pause. */
  awaitAdvice: string;
  /** The log records (info or above) that the episode produced. */
  logged: readonly LogRecord[];
  /** The note under a wrong pause or a call during one. */
  backoffNote: string;
  /** The note under a wrong log. */
  logOnceNote: string;
}

/**
 * The three checks of a back-off episode, in the docs' words: the pauses asked
 * for were {@linkcode expectedBackoff} of the failures, in order; no failing
 * call was made while a pause ran (it was awaited); and the episode logged
 * exactly one record, a warning (or an error). Lessons 3, 6 and 9 grade their
 * accept loops with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { judgeBackoffEpisode, type PauseCall } from "./backoff.ts";
 * import type { LogRecord } from "./logs.ts";
 *
 * const failed: string[] = [];
 * const t = { check: (ok: boolean, d: { step: string }) => void (ok || failed.push(d.step)) };
 * const calls: PauseCall<number>[] = [10, 20, 20].map((ms) => ({ ms, before: 0, after: 0 }));
 * const warning = { level: "warning", message: ["out of descriptors"] } as unknown as LogRecord;
 * judgeBackoffEpisode(t, {
 *   calls, failures: 3, which: "first", failing: "accept()", pause: "pause",
 *   callsDuring: (call) => call.after! - call.before, callsMade: () => "3 accept() calls",
 *   awaitAdvice: "await the pause", logged: [warning], backoffNote: "", logOnceNote: "",
 * });
 * assert.deepEqual(failed, ["the pauses your server asked for in the first episode (3 failed accept() calls)"]);
 * ```
 */
export function judgeBackoffEpisode<S>(
  t: Pick<Grader, "check">,
  e: BackoffEpisode<S>,
): void {
  const word = e.episode ?? "episode";
  const episode = `${e.which} ${word}`;
  const asked = e.calls.map((call) => call.ms);
  const backoff = expectedBackoff(e.failures);
  const shown = (pauses: number[]) => `${e.pause}(${pauses.join(`), ${e.pause}(`)})`;
  t.check(asked.length === e.failures && asked.every((ms, i) => ms === backoff[i]), {
    step:
      `the pauses your server asked for in the ${episode} (${e.failures} failed ${e.failing} calls)`,
    expected: shown(backoff),
    actual: asked.length === 0 ? `no call of ${e.pause}; ${e.callsMade()}` : shown(asked),
    note: e.backoffNote,
  });
  const eager = e.calls.find((call) => e.callsDuring(call) > 0);
  t.check(eager === undefined, {
    step: `${e.failing} calls made while a pause of the ${episode} was running`,
    expected: `none: ${e.awaitAdvice}`,
    actual: eager === undefined ? "none" : `${e.callsDuring(eager)} during ${shown([eager.ms])}`,
    note: e.backoffNote,
  });
  const [first] = e.logged;
  t.check(
    e.logged.length === 1 && (first.level === "warning" || first.level === "error"),
    {
      step: `what your server logged while ${e.failures} ${e.failing} calls failed (${episode})`,
      expected: `one warning, for the whole ${word}`,
      actual: showLogs(e.logged),
      note: e.logOnceNote,
    },
  );
}
