/**
 * The grading channel: what a suite's process tells the runner, as data.
 *
 * The harness appends one JSON object per line to the file named by
 * `WORKBOOK_EVENTS`, synchronously (a CPU loop in learner code stops every
 * timer, but a line already written stays written). The runner reads the file
 * while the suite runs, so it can show a failure the moment it is known.
 *
 * @module
 */
import type { FailureKind } from "./failure.ts";
import { readEnv } from "./target.ts";

/**
 * The environment variable that names the events file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EVENTS_ENV } from "./events.ts";
 *
 * assert.equal(EVENTS_ENV, "WORKBOOK_EVENTS");
 * ```
 */
export const EVENTS_ENV = "WORKBOOK_EVENTS";

/** A check was registered (in suite order), possibly skipped with a reason. */
export interface RegisterEvent {
  /** The kind of event. */
  type: "register";
  /** The check's name. */
  check: string;
  /** Its place in the suite, from 0 (a shard registers only some of them). */
  index?: number;
  /** Why it is skipped here, if it is. */
  skip?: string;
}

/** A check started one of its steps. */
export interface StepEvent {
  /** The kind of event. */
  type: "step";
  /** The check's name. */
  check: string;
  /** The step, in words. */
  step: string;
}

/** A check's own verdict, as the harness saw it. */
export interface ResultEvent {
  /** The kind of event. */
  type: "result";
  /** The check's name. */
  check: string;
  /** Whether the check passed. */
  ok: boolean;
  /** Set when not ok. */
  kind?: FailureKind;
  /** The step that failed. */
  step?: string;
  /** The learner-facing report of the failure. */
  report?: string;
  /** How long the check took, in ms. */
  ms: number;
}

/** Any event on the channel. */
/**
 * A wait of a check ended in time but used a good part of its budget (at
 * least {@linkcode MARGIN_SHARE} of it): how close passing code came to a
 * deadline, for the self-check's report of the tightest steps.
 */
export interface MarginEvent {
  /** The kind of event. */
  type: "margin";
  /** The check's name. */
  check: string;
  /** The step, in words. */
  step: string;
  /** The run time the wait used, in ms (time spent waiting for a CPU not counted). */
  usedMs: number;
  /** The step's budget, in ms. */
  budgetMs: number;
}

/** Every event of the grading channel. */
export type GradeEvent = RegisterEvent | StepEvent | ResultEvent | MarginEvent;

/**
 * The share of a step's budget from which a wait that ended in time is
 * reported as a {@linkcode MarginEvent} (quicker ones are not worth a line).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MARGIN_SHARE } from "./events.ts";
 *
 * assert.ok(MARGIN_SHARE > 0 && MARGIN_SHARE < 1);
 * ```
 */
export const MARGIN_SHARE = 0.25;

/**
 * Reports a wait that ended in time after `usedMs` of its `budgetMs`, as a
 * {@linkcode MarginEvent} when it used at least {@linkcode MARGIN_SHARE} of
 * the budget; quicker waits report nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type GradeEvent, onEmit, reportMargin } from "./events.ts";
 *
 * const seen: GradeEvent[] = [];
 * const stop = onEmit((event) => void seen.push(event));
 * reportMargin("echoes", "the echo of 2 MiB", 20, 500); // 4 %: nothing
 * reportMargin("echoes", "the echo of 2 MiB", 400, 500);
 * stop();
 * assert.deepEqual(seen, [
 *   { type: "margin", check: "echoes", step: "the echo of 2 MiB", usedMs: 400, budgetMs: 500 },
 * ]);
 * ```
 */
export function reportMargin(check: string, step: string, usedMs: number, budgetMs: number): void {
  if (usedMs < MARGIN_SHARE * budgetMs) return;
  emit({ type: "margin", check, step, usedMs: Math.round(usedMs), budgetMs });
}

const listeners = new Set<(event: GradeEvent) => void>();

/**
 * Calls `listener` with every event emitted in this process from now on,
 * synchronously and before it is written, whether or not a runner follows
 * the channel; the returned function unsubscribes. A listener that throws is
 * ignored. This is how the harness's parts hear of each other without
 * importing each other (suite.ts tells the freeze watch which step runs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emit, type GradeEvent, onEmit } from "./events.ts";
 *
 * const steps: string[] = [];
 * const stop = onEmit((event: GradeEvent) => {
 *   if (event.type === "step") steps.push(event.step);
 * });
 * emit({ type: "step", check: "replies", step: "connect" });
 * stop();
 * emit({ type: "step", check: "replies", step: "not heard" });
 * assert.deepEqual(steps, ["connect"]);
 * ```
 */
export function onEmit(listener: (event: GradeEvent) => void): () => void {
  const own = (event: GradeEvent) => listener(event);
  listeners.add(own);
  return () => void listeners.delete(own);
}

/**
 * Appends `event` to the events file, if the runner asked for one, after
 * telling the {@linkcode onEmit} listeners. Never throws: the channel is the
 * runner's, grading goes on without it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emit, parseEvents } from "./events.ts";
 *
 * // Without WORKBOOK_EVENTS set, emit writes nothing and returns quietly.
 * emit({ type: "step", check: "replies", step: "connect" });
 * assert.deepEqual(parseEvents('{"type":"step","check":"a","step":"b"}\nnot json\n').length, 1);
 * ```
 */
export function emit(event: GradeEvent): void {
  for (const listener of [...listeners]) {
    try {
      listener(event);
    } catch {
      // A listener's trouble is its own: the event still goes to the runner.
    }
  }
  const path = readEnv(EVENTS_ENV);
  if (!path) return;
  try {
    Deno.writeTextFileSync(path, JSON.stringify(event) + "\n", { append: true });
  } catch {
    // The report loses a line; the suite's verdict still reaches deno test.
  }
}

/**
 * The events in a chunk of the file; lines that are not whole events (a line
 * still being written) are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseEvents } from "./events.ts";
 *
 * const events = parseEvents('{"type":"register","check":"a"}\n{"type":"result","che');
 * assert.deepEqual(events, [{ type: "register", check: "a" }]);
 * ```
 */
export function parseEvents(text: string): GradeEvent[] {
  return text.split("\n").filter(Boolean).flatMap((line) => {
    try {
      const event = JSON.parse(line);
      return typeof event?.type === "string" && typeof event?.check === "string" ? [event] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Follows an events file as it grows: each call of `read()` returns the
 * events appended since the last call (only whole lines).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventFollower } from "./events.ts";
 *
 * const path = await Deno.makeTempFile();
 * const follower = new EventFollower(path);
 * await Deno.writeTextFile(path, '{"type":"register","check":"a"}\n{"type":"ste');
 * assert.deepEqual((await follower.read()).length, 1);
 * await Deno.writeTextFile(path, 'p","check":"a","step":"s"}\n', { append: true });
 * assert.deepEqual((await follower.read())[0].type, "step");
 * await Deno.remove(path);
 * ```
 */
export class EventFollower {
  readonly #path: string;
  #offset = 0;
  #partial = "";
  readonly #decoder = new TextDecoder();

  /** Follows the events file at `path` from its start (it need not exist yet). */
  constructor(path: string) {
    this.#path = path;
  }

  /** The whole events appended since the last call. */
  async read(): Promise<GradeEvent[]> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#path, { read: true });
    } catch {
      return [];
    }
    try {
      await file.seek(this.#offset, Deno.SeekMode.Start);
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const n = await file.read(buffer);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
        this.#offset += n;
      }
      const text = this.#partial +
        chunks.map((c) => this.#decoder.decode(c, { stream: true })).join("");
      const end = text.lastIndexOf("\n");
      this.#partial = text.slice(end + 1);
      return parseEvents(text.slice(0, end + 1));
    } finally {
      file.close();
    }
  }
}
