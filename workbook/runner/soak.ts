/**
 * `deno task soak [N …] [--runs R] [--jobs J]`: grades the reference of each
 * lesson R times (default 20), J suites at a time (default 6), and says which
 * checks ever failed. A suite that fails its own solution once in twenty runs
 * is flaky: it depends on timing it should not. Figures are printed, not
 * asserted; the exit code is 1 when any run failed.
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";
import { median } from "./bench.ts";
import { gradeLesson } from "./grade.ts";

/** What R gradings of one lesson's reference came to. */
export interface SoakResult {
  lesson: Lesson;
  runs: number;
  passed: number;
  /** Check name (or the run's problem) → how many runs it failed in. */
  failures: Map<string, number>;
  /** Wall time of each run, in ms. */
  times: number[];
}

/** Grades every lesson's solution `runs` times, `jobs` gradings at once. */
export async function soak(
  chosen: readonly Lesson[],
  options: { runs?: number; jobs?: number } = {},
): Promise<SoakResult[]> {
  const runs = options.runs ?? 20;
  const results = chosen.map((lesson) => ({
    lesson,
    runs,
    passed: 0,
    failures: new Map<string, number>(),
    times: [] as number[],
  }));
  const queue = results.flatMap((r) => Array.from({ length: runs }, () => r));
  let next = 0;
  async function worker() {
    while (next < queue.length) {
      const result = queue[next++];
      const graded = await gradeLesson(result.lesson, { target: "solutions" });
      result.times.push(graded.durationMs);
      if (graded.passed) result.passed++;
      const failed = graded.checks.filter((c) => !c.ok).map((c) => c.name);
      if (graded.problem) failed.push(`(run) ${graded.problem.split("\n")[0]}`);
      for (const name of failed) result.failures.set(name, (result.failures.get(name) ?? 0) + 1);
    }
  }
  await Promise.all(Array.from({ length: options.jobs ?? 6 }, worker));
  return results;
}

/** One line per lesson, then every check that ever failed. */
export function renderSoak(results: SoakResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const middle = r.times.length ? median(r.times) : 0;
    const worst = Math.max(0, ...r.times);
    lines.push(
      `${r.lesson.id} ${r.passed}/${r.runs} passed  median ${(middle / 1000).toFixed(2)} s, ` +
        `worst ${(worst / 1000).toFixed(2)} s`,
    );
    for (const [name, count] of r.failures) lines.push(`   ✗ ${count}× ${name}`);
  }
  return lines.join("\n");
}
