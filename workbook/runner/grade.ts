/**
 * Grades one lesson: runs its suite with `deno test` in a subprocess, with
 * the lesson's own least permissions and an overall deadline, and turns the
 * results into checks a report can show.
 *
 * @module
 */
import { DEFAULT_LESSON_BUDGET_MS, type Lesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { parseJunit } from "./junit.ts";
import { gradingFlags } from "./permissions.ts";

/** Why a check failed, in the runner's words. */
export type CheckFailureKind = "todo" | "cpu" | "leak" | "failed";

/** One graded check (one test of the suite). */
export interface Check {
  name: string;
  ok: boolean;
  skipped: boolean;
  kind?: CheckFailureKind;
  /** The learner-facing failure report. */
  message?: string;
}

/** The outcome of grading one lesson once. */
export interface GradeResult {
  lesson: Lesson;
  /** The directory laid out like lessons/ that was graded. */
  target: string;
  checks: Check[];
  /** True when every check passed (skipped ones aside) and there was at least one. */
  passed: boolean;
  /** Set when the run as a whole went wrong: deadline, crash, suite not loadable. */
  problem?: string;
  durationMs: number;
  /** Raw `deno test` output, for `--verbose` and for diagnosing the course itself. */
  output: string;
}

/** Options of {@linkcode gradeLesson}. */
export interface GradeOptions {
  /** Directory laid out like lessons/ (default: the learner's lessons/). */
  target?: string;
  /** Stop at the first failing check (the self-check uses it for known-bad variants). */
  failFast?: boolean;
  /** Show the suite's own output and debug logs. */
  verbose?: boolean;
  /** Overall deadline in ms (default: the lesson's budget). */
  deadlineMs?: number;
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
  // Unix socket paths are limited to ~108 bytes, so the scratch directory lives in /tmp.
  const scratch = lesson.permissions.tmp
    ? await Deno.makeTempDir({ dir: "/tmp", prefix: "socket-workbook-" })
    : `${run}/scratch`;
  const junit = `${run}/junit.xml`;
  const trace = `${run}/trace.jsonl`;
  await Deno.writeTextFile(trace, "");
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
    ...gradingFlags(lesson, { root: PROJECT_ROOT, targetRoot: target, scratch, trace }),
    suite,
  ];
  const child = new Deno.Command("deno", {
    args,
    cwd: PROJECT_ROOT,
    env: {
      WORKBOOK_TARGET: target,
      WORKBOOK_TRACE: trace,
      WORKBOOK_SCRATCH: scratch,
      ...(options.verbose ? { WORKBOOK_VERBOSE: "1" } : {}),
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const deadlineMs = options.deadlineMs ?? lesson.budgetMs ?? DEFAULT_LESSON_BUDGET_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, deadlineMs);
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  clearTimeout(timer);
  const output = stdout + stderr;
  const traced = await readTrace(trace);
  const xml = await Deno.readTextFile(junit).catch(() => undefined);
  await Deno.remove(run, { recursive: true }).catch(() => {});
  if (lesson.permissions.tmp) await Deno.remove(scratch, { recursive: true }).catch(() => {});

  const checks = xml ? toChecks(parseJunit(xml), traced) : [];
  let problem: string | undefined;
  if (timedOut) {
    const last = traced.at(-1);
    problem = `grading stopped after ${deadlineMs / 1000} s, the lesson's deadline` +
      (last ? `; the last step started was "${last.step}" in "${last.test}"` : "") +
      ". Learner code that never returns or loops without awaiting keeps the suite from finishing.";
  } else if (!xml) {
    problem = `the suite did not run (exit code ${status.code}):\n${tail(output, 40)}`;
  } else if (checks.length === 0) {
    problem = `the suite ran no checks:\n${tail(output, 20)}`;
  } else if (!status.success && checks.every((c) => c.ok)) {
    // Every test passed, yet deno test failed: an error outside any test.
    problem = `the suite failed outside its checks:\n${tail(output, 30)}`;
  }
  const counted = checks.filter((c) => !c.skipped);
  return {
    lesson,
    target,
    checks,
    passed: !problem && counted.length > 0 && counted.every((c) => c.ok),
    problem,
    durationMs: performance.now() - started,
    output,
  };
}

/** `lessons`, `solutions` or a path → absolute directory. */
export function resolveTarget(target: string): string {
  if (target === "lessons" || target === "solutions") return `${PROJECT_ROOT}/${target}`;
  return target.startsWith("/") ? target : `${Deno.cwd()}/${target}`;
}

async function readTrace(path: string): Promise<{ test: string; step: string }[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter(Boolean).flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

function toChecks(
  cases: ReturnType<typeof parseJunit>,
  traced: { test: string; step: string }[],
): Check[] {
  // Steps of Deno's t.step appear as "test > step"; the workbook's checks are whole tests.
  const names = new Set(cases.map((c) => c.name));
  return cases
    .filter((c) => !c.name.includes(" > ") || !names.has(c.name.split(" > ")[0]))
    .map((c) => {
      if (c.skipped) return { name: c.name, ok: true, skipped: true };
      if (c.failure === undefined) return { name: c.name, ok: true, skipped: false };
      const { kind, message } = explainFailure(c.name, c.failure, traced);
      return { name: c.name, ok: false, skipped: false, kind, message };
    });
}

/** Words for the failures Deno itself reports: a test timeout (CPU loop) and leaks. */
function explainFailure(
  test: string,
  raw: string,
  traced: { test: string; step: string }[],
): { kind: CheckFailureKind; message: string } {
  const message = raw.replace(/^(Uncaught )?(GradeFailure|Error): /, "").trim();
  if (/is not implemented yet/.test(message)) return { kind: "todo", message };
  const timeout = message.match(/Test timed out after (\d+)ms/);
  if (timeout) {
    const step = traced.filter((t) => t.test === test).at(-1)?.step;
    return {
      kind: "cpu",
      message: `step: ${step ?? "(before the first step)"}\n` +
        `expected: the step to finish (each step has its own deadline)\n` +
        `actual:   the whole check ran out of its ${
          Number(timeout[1]) / 1000
        } s budget while your ` +
        `code kept the CPU busy, so not even the step's deadline could fire\n` +
        `note: a loop that never awaits (e.g. \`while (true) { … }\` around synchronous code) ` +
        `freezes every connection in the program. Await inside loops, and check their exit condition.`,
    };
  }
  if (/Leaks detected|leaking|were started in this test|opened during the test/.test(message)) {
    return {
      kind: "leak",
      message: `your code left something open when the check ended:\n${message}\n` +
        `note: close every connection and listener you open (use try/finally), and let a ` +
        `server's close() wait until its connections are closed.`,
    };
  }
  return { kind: "failed", message };
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
