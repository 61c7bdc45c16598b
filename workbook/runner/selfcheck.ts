/**
 * `deno task test`: the course checks itself. Formatting, lint and types are
 * clean; the catalogue matches the files; starters are generated from the
 * solutions; every solution passes its suite; every untouched starter fails
 * with only "not implemented yet"; every known-bad variant is rejected and
 * every known-good variant passes; each lesson's committed mutation result
 * is current and meets the target score.
 * Ends with `N passed, M failed`.
 *
 * @module
 */
import { docPath, type Lesson, lessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import type { MarginEvent } from "../harness/events.ts";
import { listCases, materializeCase } from "./variants.ts";
import { materializeStarter, startersBeside } from "./starters.ts";
import { gradeLesson, type GradeResult } from "./grade.ts";
import { generatedDrift } from "./generated.ts";
import { hintProblems, hintsPath, loadHints } from "../hints.ts";
import { solutionCodeInDocs } from "./solution_code.ts";
import { chartProblems } from "./charts.ts";
import { pokeOutcomes } from "./pokes.ts";
import { paint } from "./style.ts";
import { mutationProblems, TARGET_SCORE } from "../mutate/result.ts";

/** One line of the self-check. */
interface Outcome {
  name: string;
  ok: boolean;
  detail?: string;
  ms: number;
}

async function run(args: string[]): Promise<{ ok: boolean; output: string }> {
  const { success, stdout, stderr } = await new Deno.Command("deno", {
    args,
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return { ok: success, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

async function timed(
  name: string,
  fn: () => Promise<{ ok: boolean; detail?: string }>,
): Promise<Outcome> {
  const start = performance.now();
  try {
    const { ok, detail } = await fn();
    return { name, ok, detail, ms: performance.now() - start };
  } catch (error) {
    return {
      name,
      ok: false,
      detail: String(error instanceof Error ? error.stack : error),
      ms: performance.now() - start,
    };
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(`${PROJECT_ROOT}/${path}`).then(() => true, () => false);
}

/** Files and sections every lesson must have. */
async function layoutProblems(lesson: Lesson): Promise<string[]> {
  const problems: string[] = [];
  for (const file of lesson.files) {
    for (const tree of ["solutions", "lessons"]) {
      const path = `${tree}/${lesson.slug}/${file}`;
      if (!await exists(path)) problems.push(`missing ${path}`);
    }
  }
  for (const program of lesson.programs) {
    const path = `lessons/${lesson.slug}/${program.file}`;
    if (!await exists(path)) problems.push(`program ${program.name}: missing ${path}`);
  }
  // Files the learner does not edit exist once, in lessons/: the reference holds only theirs.
  for await (const entry of Deno.readDir(`${PROJECT_ROOT}/solutions/${lesson.slug}`)) {
    if (!lesson.files.includes(entry.name)) {
      problems.push(
        `solutions/${lesson.slug}/${entry.name} is not a learner file (catalogue \`files\`): ` +
          `programs and given files live once, in lessons/${lesson.slug}/`,
      );
    }
  }
  if (!await exists(`tests/${lesson.slug}_test.ts`)) {
    problems.push(`missing tests/${lesson.slug}_test.ts`);
  }
  const doc = await Deno.readTextFile(`${PROJECT_ROOT}/${docPath(lesson)}`).catch(() => undefined);
  if (doc === undefined) problems.push(`missing ${docPath(lesson)}`);
  else {
    if (/^## Hints/m.test(doc)) {
      problems.push(
        `${docPath(lesson)} has a "## Hints" section: hints live once, in ${hintsPath(lesson)}`,
      );
    }
    if (!/^## Poke it yourself/m.test(doc)) {
      problems.push(`${docPath(lesson)} has no "## Poke it yourself" section`);
    }
  }
  if ((await loadHints(lesson)).length === 0) problems.push(`no hints in ${hintsPath(lesson)}`);
  for (const found of await solutionCodeInDocs(lesson)) {
    problems.push(`${found.in} repeats the reference's code (${found.from}): ${found.code}`);
  }
  if ((await listCases(lesson, "bad")).length < 2) {
    problems.push("fewer than 2 known-bad variants in tests/bad/");
  }
  return problems;
}

async function starterDrift(lesson: Lesson): Promise<string[]> {
  return (await startersBeside(lesson)).filter((f) => f.current !== f.starter).map((f) =>
    `lessons/${lesson.slug}/${f.name} ${f.current === undefined ? "is missing" : "differs"}`
  );
}

function describeChecks(result: GradeResult): string {
  const lines = result.checks.map((c) =>
    `${c.skipped ? "-" : c.ok ? "✓" : "✗"} ${c.name}${
      c.ok ? "" : `\n    ${(c.message ?? "").split("\n").join("\n    ")}`
    }`
  );
  if (result.problem) lines.push(`problem: ${result.problem}`);
  return lines.join("\n");
}

/** Grades a directory built for one job (a starter, a variant), then removes it. */
async function gradeBuilt(
  lesson: Lesson,
  build: () => Promise<string>,
  options: { failFast?: boolean } = {},
): Promise<GradeResult> {
  const dir = await build();
  try {
    return await gradeLesson(lesson, { target: dir, ...options });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** When each known-bad variant's first failure reached the report, in ms (streamed). */
const firstFailures: number[] = [];

/** The slow waits of passing runs (solutions, good variants): where a correct program comes closest to a budget. */
const margins: { run: string; margin: MarginEvent }[] = [];

/** How many of the tightest margins the self-check prints. */
const MARGINS_SHOWN = 8;

/** Keeps the margins of a passing run, named `run` in the report. */
function keepMargins(run: string, result: GradeResult): void {
  for (const margin of result.margins) margins.push({ run, margin });
}

/** Jobs for every lesson: solution, pristine starter, each bad case, each good case. */
async function lessonJobs(lesson: Lesson): Promise<(() => Promise<Outcome>)[]> {
  const jobs: (() => Promise<Outcome>)[] = [];
  jobs.push(() =>
    timed(`${lesson.id} solution passes its suite`, async () => {
      const result = await gradeLesson(lesson, { target: "solutions" });
      if (!result.passed) return { ok: false, detail: describeChecks(result) };
      keepMargins(`${lesson.id} solution`, result);
      // The hints file answers exactly this suite's checks.
      const problems = hintProblems(await loadHints(lesson), result.checks.map((c) => c.name));
      return {
        ok: problems.length === 0,
        detail: problems.length
          ? `${hintsPath(lesson)}:\n${problems.join("\n")}`
          : `${result.summary.passing} checks, each answered by a hint`,
      };
    })
  );
  jobs.push(() =>
    timed(`${lesson.id} untouched starter fails with only "not implemented yet"`, async () => {
      const result = await gradeBuilt(lesson, () => materializeStarter(lesson));
      const counted = result.checks.filter((c) => !c.skipped);
      const ok = !result.problem && counted.length > 0 &&
        counted.every((c) => !c.ok && c.kind === "todo");
      return { ok, detail: ok ? `${result.summary.counted} checks` : describeChecks(result) };
    })
  );
  for (const goodCase of await listCases(lesson, "good")) {
    jobs.push(() =>
      timed(`${lesson.id} passes good/${goodCase.name}`, async () => {
        const result = await gradeBuilt(lesson, () => materializeCase(goodCase));
        if (result.passed) keepMargins(`${lesson.id} good/${goodCase.name}`, result);
        return {
          ok: result.passed,
          detail: result.passed
            ? goodCase.why
            : `the suite rejected a correct variant (${goodCase.why})\n${describeChecks(result)}`,
        };
      })
    );
  }
  for (const badCase of await listCases(lesson, "bad")) {
    jobs.push(() =>
      timed(`${lesson.id} rejects bad/${badCase.name}`, async () => {
        const result = await gradeBuilt(lesson, () => materializeCase(badCase), { failFast: true });
        if (result.firstFailureMs !== undefined) firstFailures.push(result.firstFailureMs);
        const failed = result.checks.filter((c) => !c.ok);
        const report = [
          result.problem ?? "",
          ...failed.map((c) => `${c.name}\n${c.message ?? ""}`),
        ].join("\n");
        const rejected = !result.passed && failed.every((c) => c.kind !== "todo");
        const expected = !badCase.expect || new RegExp(badCase.expect).test(report);
        const first = failed[0] ? `✗ ${failed[0].name}` : result.problem ?? "";
        return {
          ok: rejected && expected,
          detail: rejected && expected
            ? first.split("\n")[0]
            : !rejected
            ? `the suite did not reject it (${badCase.why})\n${describeChecks(result)}`
            : `rejected, but the report does not match /${badCase.expect}/:\n${report}`,
        };
      })
    );
  }
  return jobs;
}

/** Runs jobs `width` at a time, keeping order in the results. */
async function pool<T>(
  jobs: (() => Promise<T>)[],
  width: number,
  each: (r: T) => void,
): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  let printed = 0;
  const done = new Set<number>();
  async function worker() {
    while (next < jobs.length) {
      const index = next++;
      results[index] = await jobs[index]();
      done.add(index);
      while (done.has(printed)) each(results[printed++]);
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

/** Runs the whole self-check; returns the exit code. */
export async function selfCheck(options: { only?: Lesson[]; jobs?: number } = {}): Promise<number> {
  const selected = options.only ?? lessons;
  const outcomes: Outcome[] = [];
  const print = (o: Outcome) => {
    outcomes.push(o);
    const mark = o.ok ? paint("green", "✓") : paint("red", "✗");
    const time = paint("gray", `(${(o.ms / 1000).toFixed(1)} s)`);
    console.log(
      `${mark} ${o.name} ${time}${o.ok && o.detail ? paint("gray", ` — ${o.detail}`) : ""}`,
    );
    if (!o.ok && o.detail) console.log(o.detail.split("\n").map((l) => `    ${l}`).join("\n"));
  };
  console.log(paint("bold", "Course self-check"));
  const started = performance.now();
  const tool = (name: string, args: string[]) =>
    timed(name, async () => {
      const { ok, output } = await run(args);
      return { ok, detail: ok ? undefined : output.trim().split("\n").slice(-30).join("\n") };
    });
  const statics = await Promise.all([
    tool("deno fmt --check", ["fmt", "--check"]),
    tool("deno lint (everything but the starters)", ["lint", "--ignore=lessons/"]),
    // A starter's stubs leave parameters and imports unused and async bodies without await:
    // that is the unfinished part. The finished form of each file is solutions/ (linted
    // above in full), which is what the learner's file becomes, with no scaffolding to delete.
    tool("deno lint (starters, except what a stub leaves unused)", [
      "lint",
      "--rules-exclude=no-unused-vars,require-await,require-yield",
      "lessons/",
    ]),
    tool("deno doc --lint (mod.ts and the harness entry)", [
      "doc",
      "--lint",
      "mod.ts",
      "workbook/harness/mod.ts",
    ]),
    tool("deno check --doc (mod, engine, suites, solutions, starters, doc examples)", [
      "check",
      "--doc",
      "mod.ts",
      "workbook/",
      "tests/",
      "solutions/",
      "lessons/",
    ]),
  ]);
  statics.forEach(print);
  print(
    await timed(
      "layout: every lesson has its files, doc, hints (no solution code in either) and bad variants",
      async () => {
        const problems = (await Promise.all(
          selected.map(async (l) => (await layoutProblems(l)).map((p) => `${l.slug}: ${p}`)),
        )).flat();
        return {
          ok: problems.length === 0,
          detail: problems.join("\n") || `${selected.length} lessons`,
        };
      },
    ),
  );
  print(
    await timed(
      "generated files are in sync: starters, README table, deno.json permissions",
      async () => {
        const drift = [
          ...(await Promise.all(selected.map(starterDrift))).flat(),
          ...await generatedDrift(PROJECT_ROOT, lessons),
        ];
        return {
          ok: drift.length === 0,
          detail: drift.length
            ? `${
              drift.join("\n")
            }\n(run \`deno task sync\` after changing a solution or the catalogue; a learner's edits show here too)`
            : undefined,
        };
      },
    ),
  );
  print(
    await timed(
      `mutation results: current for each solution and suite, score ≥ ${TARGET_SCORE}%`,
      async () => {
        const problems = (await Promise.all(
          selected.map(async (l) => (await mutationProblems(l)).map((p) => `${l.slug}: ${p}`)),
        )).flat();
        return {
          ok: problems.length === 0,
          detail: problems.join("\n") || `${selected.length} lessons`,
        };
      },
    ),
  );
  print(
    await timed("engine tests (workbook/**/_test.ts)", async () => {
      const { ok, output } = await run([
        "test",
        "--no-prompt",
        // Engine tests build throwaway trees (progress files, charts) under /tmp.
        "--allow-read=.,/dev/null,/tmp",
        "--allow-write=/tmp",
        "--allow-net=127.0.0.1",
        "--allow-ffi",
        "--allow-env",
        // The pokes runner's tests run background shells as a poke does.
        "--allow-run=deno,bash,setsid",
        "workbook/",
      ]);
      const summary = output.match(/(ok|FAILED) \| (\d+) passed.*$/m)?.[0];
      return { ok, detail: ok ? summary : output.trim().split("\n").slice(-40).join("\n") };
    }),
  );
  print(
    await timed(
      "bench charts: each parses as SVG, is embedded in a doc, names its command",
      async () => {
        const problems = await chartProblems();
        return { ok: problems.length === 0, detail: problems.join("\n") || undefined };
      },
    ),
  );
  const jobs = (await Promise.all(selected.map(lessonJobs))).flat();
  // Most known-bad variants spend their time waiting out a step deadline, not on the CPU:
  // six at a time keeps 2 cores busy without starving the timing of any suite.
  // The docs' pokes run beside the grading jobs, one block at a time: each starts a reference
  // program and talks to it with nc, python3, ss… as the doc says (a missing tool skips).
  const pokes = pokeOutcomes(selected, {
    jobs: 1,
    onOutcome: (o) =>
      print({
        name: o.name,
        ok: o.ok,
        detail: o.skipped ? `skipped: ${o.detail}` : o.detail,
        ms: o.ms,
      }),
  });
  await Promise.all([pool(jobs, options.jobs ?? 5, print), pokes]);
  const passed = outcomes.filter((o) => o.ok).length;
  const failed = outcomes.length - passed;
  if (firstFailures.length) {
    const sorted = [...firstFailures].sort((a, b) => a - b);
    const at = (q: number) => (sorted[Math.floor(q * (sorted.length - 1))] / 1000).toFixed(2);
    console.log(paint(
      "gray",
      `time to first failure over ${sorted.length} known-bad variants: median ${at(0.5)} s, ` +
        `90th percentile ${at(0.9)} s, worst ${at(1)} s (graded ${options.jobs ?? 5} at a time)`,
    ));
  }
  if (margins.length) {
    // Passing runs only: a step a correct program finishes near its budget is a failure
    // waiting for a busier machine. Deadlines count run time (time spent waiting for a CPU
    // is given back), so the share shown is of the program's own time.
    const share = (m: MarginEvent) => m.usedMs / m.budgetMs;
    const tightest = [...margins].sort((a, b) => share(b.margin) - share(a.margin))
      .slice(0, MARGINS_SHOWN);
    console.log(paint(
      "gray",
      `closest to their budgets in passing runs (run time used of the step's budget):\n` +
        tightest.map(({ run, margin: m }) =>
          `  ${Math.round(share(m) * 100)}% ${run}: ${m.check} — ${m.step} ` +
          `(${m.usedMs} of ${m.budgetMs} ms)`
        ).join("\n"),
    ));
  }
  console.log(
    paint("gray", `self-check took ${((performance.now() - started) / 1000).toFixed(1)} s`),
  );
  // A long run's failures scroll far up; the last lines name them again, so a log's tail
  // (all CI keeps of it) says what failed and why.
  const failures = outcomes.filter((o) => !o.ok);
  if (failures.length) {
    console.log(paint("bold", "failed:"));
    for (const o of failures) {
      console.log(`${paint("red", "✗")} ${o.name}`);
      const lines = (o.detail ?? "").split("\n");
      const shown = lines.slice(0, 12).map((l) => `    ${l}`);
      if (lines.length > 12) shown.push(`    … ${lines.length - 12} more lines above`);
      console.log(shown.join("\n"));
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
