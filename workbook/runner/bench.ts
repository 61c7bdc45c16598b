/**
 * `deno task bench`: warm wall time of grading lessons (`deno task lesson N
 * --solution`, as a learner runs it) and of the course self-check. Figures
 * are printed, never asserted: the machine may be shared.
 *
 * @module
 */
import { type Lesson, lessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";

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
