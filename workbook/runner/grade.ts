/**
 * Grades one lesson: runs its suite with `deno test` in a subprocess, with
 * the lesson's own least permissions and an overall deadline, and turns the
 * results into checks a report can show.
 *
 * @module
 */
import { DEFAULT_LESSON_BUDGET_MS, type Lesson } from "../catalogue.ts";
import {
  EventFollower,
  type GradeEvent,
  type MarginEvent,
  type ResultEvent,
} from "../harness/events.ts";
import type { FailureKind } from "../harness/failure.ts";
import { PROJECT_ROOT, resolveTarget, SHARD_ENV } from "../harness/target.ts";
import { parseJunit } from "./junit.ts";
import { gradingFlags } from "./permissions.ts";

/**
 * Why a check failed: the harness's own kinds, plus what only the runner can
 * see — `leak` (the check passed, then Deno found something left open) and
 * `frozen` also when the whole check ran out of its budget.
 */
export type CheckKind = Exclude<FailureKind, "threw" | "uncaught"> | "crash" | "leak";

/** Words for each kind, shown beside a failing check. */
export const KIND_WORDS: Record<CheckKind, string> = {
  todo: "not implemented yet",
  mismatch: "wrong bytes or values",
  timeout: "missed a deadline",
  frozen: "froze the event loop (a loop that never awaits?)",
  crash: "your code threw",
  load: "the file could not be loaded",
  leak: "left sockets or timers open",
};

/** One graded check (one test of the suite). */
export interface Check {
  name: string;
  ok: boolean;
  skipped: boolean;
  /** Why it was skipped. */
  skip?: string;
  kind?: CheckKind;
  /** The step that failed. */
  step?: string;
  /** The learner-facing failure report. */
  message?: string;
}

/** The counts of one grading, computed once. */
export interface GradeSummary {
  /** Checks that ran (skipped ones aside). */
  counted: number;
  passing: number;
  failing: number;
  skipped: number;
}

/** The outcome of grading one lesson once. */
export interface GradeResult {
  lesson: Lesson;
  /** The directory laid out like lessons/ that was graded. */
  target: string;
  checks: Check[];
  summary: GradeSummary;
  /** True when every check passed (skipped ones aside) and there was at least one. */
  passed: boolean;
  /** Set when the run as a whole went wrong: deadline, crash, suite not loadable. */
  problem?: string;
  durationMs: number;
  /** When the first failing check was known, in ms after grading started. */
  firstFailureMs?: number;
  /** Raw `deno test` output, for `--verbose` and for diagnosing the course itself. */
  output: string;
  /** Waits that ended in time after a good part of their budget (events.ts), as they came. */
  margins: MarginEvent[];
}

/** Options of {@linkcode gradeLesson}. */
export interface GradeOptions {
  /** Directory laid out like lessons/ (default: the learner's lessons/). */
  target?: string;
  /** Stop at the first failing check (the self-check uses it for known-bad variants). */
  failFast?: boolean;
  /**
   * How many `deno test` processes share the suite's checks (default
   * {@linkcode GRADING_SHARDS}; always 1 with `failFast`).
   */
  shards?: number;
  /** Show the suite's own output and debug logs. */
  verbose?: boolean;
  /** Overall deadline in ms (default: the lesson's budget). */
  deadlineMs?: number;
  /**
   * Called for each check as soon as its verdict is known. `final` is false
   * when the details come later (a leak: deno test lists what was left open
   * only at the end); they come in a second call with `details: true`.
   */
  onCheck?: (check: Check, when: { final: boolean; details?: boolean }) => void;
}

/** Where grading runs keep their scratch files (git-ignored). */
export const WORK_DIR = `${PROJECT_ROOT}/.workbook`;

/**
 * Grades `lesson` on `options.target` (default: the learner's files).
 *
 * @example
 * ```ts ignore
 * import { getLesson } from "../catalogue.ts";
 * import { gradeLesson } from "./grade.ts";
 *
 * const result = await gradeLesson(getLesson("01"), { target: "solutions" });
 * console.log(result.passed);
 * ```
 */
export async function gradeLesson(
  lesson: Lesson,
  options: GradeOptions = {},
): Promise<GradeResult> {
  const started = performance.now();
  const target = resolveTarget(options.target ?? "lessons");
  await Deno.mkdir(`${WORK_DIR}/tmp`, { recursive: true });
  const run = await Deno.makeTempDir({ dir: `${WORK_DIR}/tmp`, prefix: `grade-${lesson.id}-` });
  // --fail-fast stops one process at its first failure; that is the self-check's way, one shard.
  const count = options.failFast ? 1 : Math.max(1, options.shards ?? GRADING_SHARDS);
  const shards = await Promise.all(
    Array.from(
      { length: count },
      (_, i) => startShard(lesson, target, run, i, count, options, started),
    ),
  );
  const deadlineMs = options.deadlineMs ?? lesson.budgetMs ?? DEFAULT_LESSON_BUDGET_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    for (const shard of shards) shard.kill();
  }, deadlineMs);
  // Follow the channels while the suite runs, so a failure shows as soon as it is known.
  let done = false;
  const exited = Promise.all(shards.map((shard) => shard.exited));
  exited.finally(() => done = true);
  while (!done) {
    for (const shard of shards) await shard.channel.poll();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
  }
  const ended = await exited;
  clearTimeout(timer);
  const output = ended.map((e) => e.output).join(count > 1 ? "\n" : "");
  const placed: { index: number; check: Check }[] = [];
  let problem: string | undefined;
  for (const [i, shard] of shards.entries()) {
    await shard.channel.poll();
    const { status, xml, output: said } = ended[i];
    const checks = shard.channel.finish(xml ? parseJunit(xml) : []);
    placed.push(...checks);
    if (problem || timedOut) continue;
    if (!xml) {
      problem = `the suite did not run (exit code ${status.code}):\n${tail(said, 40)}`;
    } else if (!status.success && checks.every((c) => c.check.ok)) {
      // Every test passed, yet deno test failed: an error outside any test.
      problem = `the suite failed outside its checks:\n${tail(said, 30)}`;
    }
  }
  await Deno.remove(run, { recursive: true }).catch(() => {});
  await Promise.all(shards.map((shard) => shard.cleanup()));

  const checks = placed.sort((a, b) => a.index - b.index).map((p) => p.check);
  if (timedOut) {
    const last = shards.map((shard) => shard.channel.lastStep).find((step) => step);
    problem = `grading stopped after ${deadlineMs / 1000} s, the lesson's deadline` +
      (last ? `; the last step started was "${last.step}" in "${last.check}"` : "") +
      ". Learner code that never returns or loops without awaiting keeps the suite from finishing.";
  } else if (!problem && checks.length === 0) {
    problem = `the suite ran no checks:\n${tail(output, 20)}`;
  }
  const summary = summarize(checks);
  const failures = shards.map((shard) => shard.channel.firstFailureMs)
    .filter((ms): ms is number => ms !== undefined);
  return {
    lesson,
    target,
    checks,
    summary,
    passed: !problem && summary.counted > 0 && summary.failing === 0,
    problem,
    durationMs: performance.now() - started,
    firstFailureMs: failures.length ? Math.min(...failures) : undefined,
    output,
    margins: shards.flatMap((shard) => shard.channel.margins),
  };
}

/** How many `deno test` processes grade one lesson by default: a late check need not wait. */
export const GRADING_SHARDS = 2;

/** One `deno test` process grading one shard of a suite. */
interface Shard {
  channel: Channel;
  exited: Promise<{ status: Deno.CommandStatus; output: string; xml?: string }>;
  kill(): void;
  cleanup(): Promise<void>;
}

async function startShard(
  lesson: Lesson,
  target: string,
  run: string,
  index: number,
  of: number,
  options: GradeOptions,
  started: number,
): Promise<Shard> {
  // Unix socket paths are limited to ~108 bytes, so the scratch directory lives in /tmp.
  const scratch = lesson.permissions.tmp
    ? await Deno.makeTempDir({ dir: "/tmp", prefix: "socket-workbook-" })
    : `${run}/scratch-${index}`;
  const junit = `${run}/junit-${index}.xml`;
  const events = `${run}/events-${index}.jsonl`;
  await Deno.writeTextFile(events, "");
  const suite = `tests/${lesson.slug}_test.ts`;
  const args = [
    "test",
    "--no-prompt",
    options.verbose ? "--reporter=pretty" : "--reporter=dot",
    "--hide-stacktraces",
    // The graded files are imported dynamically, so `deno test` would type-check only the
    // course's own suite and harness, which `deno task test` checks once up front; checking
    // them again here costs seconds of CPU per run whenever the check cache is cold.
    "--no-check",
    // heapAfterGc(): checks that per-connection state is released measure after a full GC.
    "--v8-flags=--expose-gc",
    `--junit-path=${junit}`,
    ...(options.failFast ? ["--fail-fast"] : []),
    ...gradingFlags(lesson, { root: PROJECT_ROOT, targetRoot: target, scratch, events }),
    suite,
  ];
  const child = new Deno.Command("deno", {
    args,
    cwd: PROJECT_ROOT,
    env: {
      WORKBOOK_TARGET: target,
      WORKBOOK_EVENTS: events,
      WORKBOOK_SCRATCH: scratch,
      ...(of > 1 ? { [SHARD_ENV]: `${index}/${of}` } : {}),
      ...(options.verbose ? { WORKBOOK_VERBOSE: "1" } : {}),
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const channel = new Channel(events, options.onCheck, started);
  // deno test's dot reporter prints one mark per test as it ends: the verdict of each check,
  // leaks included, as soon as deno test has it.
  const stdoutText = followLines(child.stdout, (line) => channel.mark(line));
  const exited = Promise.all([child.status, stdoutText, new Response(child.stderr).text()])
    .then(async ([status, stdout, stderr]) => ({
      status,
      output: stdout + stderr,
      xml: await Deno.readTextFile(junit).catch(() => undefined),
    }));
  return {
    channel,
    exited,
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    },
    async cleanup() {
      if (lesson.permissions.tmp) await Deno.remove(scratch, { recursive: true }).catch(() => {});
    },
  };
}

/** Counts of a list of checks. */
export function summarize(checks: readonly Check[]): GradeSummary {
  const counted = checks.filter((c) => !c.skipped);
  const passing = counted.filter((c) => c.ok).length;
  return {
    counted: counted.length,
    passing,
    failing: counted.length - passing,
    skipped: checks.length - counted.length,
  };
}

/** The harness's kinds in the runner's terms. */
function checkKind(kind: FailureKind | undefined): CheckKind {
  if (kind === undefined || kind === "threw" || kind === "uncaught") return "crash";
  return kind;
}

/** What the suite's process said, as it said it, merged at the end with deno test's verdicts. */
class Channel {
  readonly #follower: EventFollower;
  readonly #onCheck?: (check: Check, when: { final: boolean; details?: boolean }) => void;
  readonly #started: number;
  readonly #registered: { check: string; index?: number; skip?: string }[] = [];
  readonly #results = new Map<string, ResultEvent>();
  /** Marks of deno test's dot reporter not yet matched with the events (`.`, `!`, `,`). */
  readonly #marks: string[] = [];
  #marked = 0;
  /** Checks already handed to onCheck, and those handed over before their details. */
  readonly #streamed = new Set<string>();
  readonly #detailsLater = new Set<string>();
  lastStep: { check: string; step: string } | undefined;
  firstFailureMs: number | undefined;
  readonly margins: MarginEvent[] = [];

  constructor(
    path: string,
    onCheck: GradeOptions["onCheck"],
    started: number,
  ) {
    this.#follower = new EventFollower(path);
    this.#onCheck = onCheck;
    this.#started = started;
  }

  /** Takes one line of deno test's output; a verdict mark is matched after the next poll. */
  mark(line: string): void {
    if (line === "." || line === "!" || line === ",") this.#marks.push(line);
  }

  async poll(): Promise<void> {
    for (const event of await this.#follower.read()) this.#take(event);
    // A check's events are written before deno test prints its mark, so they are in by now.
    while (this.#marks.length > 0 && this.#marked < this.#registered.length) {
      const mark = this.#marks.shift()!;
      const { check: name, skip } = this.#registered[this.#marked++];
      if (skip !== undefined || this.#streamed.has(name)) continue;
      const result = this.#results.get(name);
      if (mark === ".") this.#stream({ name, ok: true, skipped: false });
      else if (result?.ok) {
        this.#detailsLater.add(name);
        this.#stream({
          ...leakCheck(name, "(deno test lists what was left open when grading ends)"),
        });
      } else if (!result) this.#stream(this.#stoppedByBudget(name));
    }
  }

  #stream(check: Check): void {
    this.#streamed.add(check.name);
    if (!check.ok) this.firstFailureMs ??= performance.now() - this.#started;
    this.#onCheck?.(check, { final: !this.#detailsLater.has(check.name) });
  }

  #take(event: GradeEvent): void {
    if (event.type === "register") this.#registered.push(event);
    else if (event.type === "step") this.lastStep = event;
    else if (event.type === "margin") this.margins.push(event);
    else {
      this.#results.set(event.check, event);
      // A failure is shown at once; a pass waits for deno test's mark (a leak may follow).
      if (!event.ok && !this.#streamed.has(event.check)) this.#stream(fromResult(event));
    }
  }

  /**
   * The checks with their places in the suite. deno test's verdict adds what the harness
   * cannot see from inside a check: resources left open after it passed, and a
   * check stopped by its whole budget (its own verdict never came).
   */
  finish(cases: ReturnType<typeof parseJunit>): { index: number; check: Check }[] {
    // Steps of Deno's t.step appear as "test > step"; the workbook's checks are whole tests.
    const verdicts = new Map(cases.map((c) => [c.name, c]));
    const placed: { index: number; check: Check }[] = [];
    for (const [position, { check: name, index, skip }] of this.#registered.entries()) {
      const place = (check: Check) => placed.push({ index: index ?? position, check });
      if (skip !== undefined) {
        place({ name, ok: true, skipped: true, skip });
        continue;
      }
      const result = this.#results.get(name);
      const verdict = verdicts.get(name);
      if (!result && !verdict) continue; // never ran: grading stopped first
      if (result && !result.ok) {
        place(fromResult(result));
        continue;
      }
      if (verdict?.failure === undefined) {
        const check = { name, ok: true, skipped: false };
        if (!this.#streamed.has(name)) this.#stream(check);
        place(check);
        continue;
      }
      const check: Check = result ? leakCheck(name, verdict.failure) : this.#stoppedByBudget(name);
      if (!this.#streamed.has(name)) this.#stream(check);
      else if (this.#detailsLater.has(name)) this.#onCheck?.(check, { final: true, details: true });
      place(check);
    }
    return placed;
  }

  #stoppedByBudget(name: string): Check {
    const step = this.lastStep?.check === name ? this.lastStep.step : undefined;
    return {
      name,
      ok: false,
      skipped: false,
      kind: "frozen",
      step,
      message: `step: ${step ?? "(before the first step)"}\n` +
        `expected: the step to finish (each step has its own deadline)\n` +
        `actual:   the whole check ran out of its budget while your code kept the CPU busy, ` +
        `so not even the step's deadline could fire\n` +
        `note: a loop that never awaits (e.g. \`while (true) { … }\` around synchronous code) ` +
        `freezes every connection in the program. Await inside loops, and check their exit condition.`,
    };
  }
}

function leakCheck(name: string, failure: string): Check {
  return {
    name,
    ok: false,
    skipped: false,
    kind: "leak",
    message: `your code left something open when the check ended:\n${failure}\n` +
      `note: close every connection and listener you open (use try/finally), and let a ` +
      `server's close() wait until its connections are closed.`,
  };
}

/** Reads a stream to its end, handing each complete line to `onLine` as it arrives. */
async function followLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<string> {
  let text = "";
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) onLine(line.trimEnd());
  }
  if (pending) onLine(pending.trimEnd());
  return text;
}

function fromResult(event: ResultEvent): Check {
  return event.ok ? { name: event.check, ok: true, skipped: false } : {
    name: event.check,
    ok: false,
    skipped: false,
    kind: checkKind(event.kind),
    step: event.step,
    message: event.report,
  };
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
