/**
 * `deno task bench`: warm wall time of grading lessons (`deno task lesson N
 * --solution`, as a learner runs it) and of the course self-check. Figures
 * are printed, never asserted: the machine may be shared.
 *
 * @module
 */
import { type Lesson, lessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { listCases } from "./variants.ts";

async function timeCommand(args: string[]): Promise<{ ms: number; ok: boolean }> {
  const start = performance.now();
  const { success } = await new Deno.Command("deno", {
    args,
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return { ms: performance.now() - start, ok: success };
}

/** The middle value (the upper one of an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Times `deno task lesson N --solution` (median of 3 warm runs) for the given
 * lessons (default: those with a suite), then one warm `deno task test`.
 */
export async function runBench(only: Lesson[] = []): Promise<number> {
  const chosen = only.length ? only : await withSuites();
  console.log("warm wall time, median of 3 runs after one warm-up\n");
  console.log("command                              median    runs");
  for (const lesson of chosen) {
    const args = ["task", "-q", "lesson", lesson.id, "--solution"];
    await timeCommand(args);
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await timeCommand(args));
    const label = `deno task lesson ${Number(lesson.id)} --solution`.padEnd(36);
    console.log(
      `${label} ${(median(runs.map((r) => r.ms)) / 1000).toFixed(2).padStart(6)} s  ` +
        runs.map((r) => (r.ms / 1000).toFixed(2)).join(" ") + (runs.every((r) =>
            r.ok
          )
          ? ""
          : "  (failed!)"),
    );
  }
  if (only.length === 0) {
    const run = await timeCommand(["task", "-q", "test"]);
    console.log(
      `${"deno task test".padEnd(36)} ${(run.ms / 1000).toFixed(2).padStart(6)} s  ${
        run.ok ? "" : "(failed!)"
      }`,
    );
  }
  return 0;
}

async function withSuites(): Promise<Lesson[]> {
  const out: Lesson[] = [];
  for (const lesson of lessons) {
    if (
      await Deno.stat(`${PROJECT_ROOT}/tests/${lesson.slug}_test.ts`).then(() => true, () => false)
    ) {
      out.push(lesson);
    }
  }
  return out;
}

/** One known-bad variant's timings: when its first failure was known, when grading ended. */
export interface FailureTiming {
  lesson: string;
  name: string;
  /** Undefined when the suite did not reject the variant. */
  firstFailureMs?: number;
  totalMs: number;
}

/**
 * Grades every known-bad variant of `chosen` the way a learner grades a
 * lesson they just edited — `deno task lesson N --bad NAME`, whose type check
 * is cold (the variant lies in a fresh directory) — `jobs` at a time, and
 * times, from the command's start, the first failing check on its output and
 * the command's end.
 */
export async function benchFailures(
  chosen: Lesson[],
  jobs = 1,
  onEach?: (timing: FailureTiming) => void,
): Promise<FailureTiming[]> {
  const cases = (await Promise.all(chosen.map((l) => listCases(l, "bad")))).flat();
  const timings: FailureTiming[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const variant = cases[next++];
      try {
        const timing = {
          lesson: variant.lesson.id,
          name: variant.name,
          ...await timeFirstFailure(variant.lesson, variant.name),
        };
        timings.push(timing);
        onEach?.(timing);
      } catch (error) {
        console.error(`${variant.lesson.id}/${variant.name}: ${error}`);
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return timings.sort((a, b) => a.lesson.localeCompare(b.lesson) || a.name.localeCompare(b.name));
}

/** Runs the learner's command on one known-bad variant; times its first ✗ line and its end. */
async function timeFirstFailure(
  lesson: Lesson,
  name: string,
): Promise<{ firstFailureMs?: number; totalMs: number }> {
  const start = performance.now();
  const child = new Deno.Command("deno", {
    args: ["task", "-q", "lesson", lesson.id, "--bad", name],
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let firstFailureMs: number | undefined;
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    if (firstFailureMs === undefined && lines.some((line) => /^\s*✗ /.test(line))) {
      firstFailureMs = performance.now() - start;
    }
  }
  await child.status;
  return { firstFailureMs, totalMs: performance.now() - start };
}

/** The table of {@linkcode benchFailures}: per lesson and overall, median and worst. */
export function renderFailureTimings(timings: FailureTiming[]): string {
  const s = (ms: number | undefined) => ms === undefined ? "  —  " : (ms / 1000).toFixed(2);
  const row = (label: string, rows: FailureTiming[]) => {
    const first = rows.map((t) => t.firstFailureMs ?? t.totalMs);
    const total = rows.map((t) => t.totalMs);
    const worst = rows.reduce((a, b) =>
      (b.firstFailureMs ?? b.totalMs) > (a.firstFailureMs ?? a.totalMs) ? b : a
    );
    return `${label.padEnd(8)} ${String(rows.length).padStart(4)}  ${
      s(median(first)).padStart(6)
    }  ${s(Math.max(...first)).padStart(6)}  ${s(median(total)).padStart(6)}  ${
      s(Math.max(...total)).padStart(6)
    }  ${worst.lesson}/${worst.name}`;
  };
  const lines = [
    "time to first failure (streamed) and total grading time, in s, per known-bad variant",
    "lesson   runs   first median / worst   total median / worst   slowest first failure",
  ];
  for (const id of [...new Set(timings.map((t) => t.lesson))]) {
    lines.push(row(id, timings.filter((t) => t.lesson === id)));
  }
  lines.push(row("all", timings));
  const unrejected = timings.filter((t) => t.firstFailureMs === undefined);
  if (unrejected.length) {
    lines.push(`not rejected: ${unrejected.map((t) => `${t.lesson}/${t.name}`).join(", ")}`);
  }
  return lines.join("\n");
}
