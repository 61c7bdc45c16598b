/**
 * The learner's commands, behind `deno task …`:
 *
 * ```
 * deno task lesson 3 [--solution | --target DIR | --bad CASE | --good CASE] [--watch] [--verbose]
 * deno task all                    grade every lesson, then the progress table
 * deno task progress               the progress table
 * deno task hint 3                 the next hint of lesson 3
 * deno task reset 3 [--yes]        the pristine starter back
 * deno task solution 3 [--force]   the reference, as a diff against your file
 * deno task run 3 server --port 9000 [--solution]   run a lesson's program
 * deno task test                   the course's self-check
 * deno task sync                   regenerate starters from solutions (course authors)
 * deno task bench                  timings of grading
 * deno task soak [N …] [--runs R]  grade each reference R times: is a suite flaky?
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { docPath, getLesson, type Lesson, lessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { type CaseKind, generateStarters, listCases, materializeCase } from "./bad.ts";
import { runBench } from "./bench.ts";
import { diffLines } from "./diff.ts";
import { gradeLesson, type GradeResult, resolveTarget } from "./grade.ts";
import { programArgs } from "./program_run.ts";
import { loadProgress, recordGrade, saveProgress } from "./progress.ts";
import { renderProgress, renderReport } from "./report.ts";
import { GENERATED } from "./generated.ts";
import { selfCheck } from "./selfcheck.ts";
import { renderSoak, soak } from "./soak.ts";
import { paint } from "./style.ts";
import { makeReference } from "../starter.ts";
import { withoutBrackets } from "../toolkit/program.ts";

const USAGE = `usage:
  deno task lesson N [--solution | --target DIR | --bad CASE | --good CASE] [--watch] [--verbose]
  deno task all
  deno task progress
  deno task hint N
  deno task reset N [--yes]
  deno task solution N [--force]
  deno task run N PROGRAM [--solution] [--host H] [--port P] [program flags]
  deno task test [N ...] [--jobs J]   (course self-check; J suites at a time)
  deno task sync            (course authors: regenerate starters)
  deno task bench
  deno task soak [N ...] [--runs R] [--jobs J]   (course authors: is any suite flaky?)
N is a lesson number (3), its id (03) or its folder (03-tcp-server).`;

class UsageError extends Error {}

function needLesson(key: string | undefined): Lesson {
  if (!key) throw new UsageError("which lesson? give its number, e.g. 1");
  try {
    return getLesson(key);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function needJobs(text: string): number {
  const jobs = Number(text);
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new UsageError(`expected a whole number ≥ 1, got "${text}"`);
  }
  return jobs;
}

async function gradeAndReport(
  lesson: Lesson,
  options: { target: string; verbose: boolean; variant?: { kind: CaseKind; name: string } },
): Promise<GradeResult> {
  let target = options.target;
  let cleanup: string | undefined;
  if (options.variant) {
    const { kind, name } = options.variant;
    const cases = await listCases(lesson, kind);
    const chosen = cases.find((c) => c.name === name);
    if (!chosen) {
      const names = cases.map((c) => c.name).join(", ") || "none";
      throw new UsageError(`lesson ${lesson.id} has no ${kind} case "${name}" (cases: ${names})`);
    }
    console.log(paint("gray", `grading the known-${kind} variant "${chosen.name}": ${chosen.why}`));
    target = cleanup = await materializeCase(chosen);
  }
  try {
    const result = await gradeLesson(lesson, { target, verbose: options.verbose });
    if (options.verbose) console.log(result.output);
    const learner = resolveTarget(target) === resolveTarget("lessons");
    if (learner) {
      const counted = result.checks.filter((c) => !c.skipped);
      await recordGrade(
        lesson.id,
        result.passed,
        counted.filter((c) => c.ok).length,
        counted.length,
      );
    }
    const progress = (await loadProgress()).lessons[lesson.id];
    console.log(renderReport(result, progress));
    console.log(paint("gray", `(graded in ${(result.durationMs / 1000).toFixed(2)} s)`));
    return result;
  } finally {
    if (cleanup) await Deno.remove(cleanup, { recursive: true }).catch(() => {});
  }
}

async function watch(lesson: Lesson, grade: () => Promise<unknown>): Promise<never> {
  const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
  await grade();
  console.log(paint("gray", `watching ${dir} — save a file to re-grade, Ctrl-C to stop`));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = Promise.resolve();
  for await (const event of Deno.watchFs(dir)) {
    if (event.kind === "access") continue;
    clearTimeout(timer);
    // Editors write in bursts; grade once the burst is over.
    timer = setTimeout(() => {
      running = running.then(async () => {
        console.clear();
        await grade();
        console.log(paint("gray", `watching ${dir} — Ctrl-C to stop`));
      });
    }, 150);
  }
  throw new Error("file watcher ended");
}

async function hint(lesson: Lesson): Promise<void> {
  const progress = await loadProgress();
  const entry = progress.lessons[lesson.id];
  const shown = entry?.hintsShown ?? 0;
  if (lesson.hints.length === 0) {
    console.log(`lesson ${lesson.id} has no hints; read ${docPath(lesson)}`);
    return;
  }
  const index = Math.min(shown, lesson.hints.length - 1);
  for (let i = 0; i < index; i++) console.log(paint("gray", `Hint ${i + 1}: ${lesson.hints[i]}`));
  console.log(paint("cyan", `Hint ${index + 1}/${lesson.hints.length}: ${lesson.hints[index]}`));
  if (index === lesson.hints.length - 1) {
    console.log(`That is the last hint. The doc: ${docPath(lesson)}`);
  }
  progress.lessons[lesson.id] = {
    ...(entry ?? { status: "started", passing: 0, total: 0, lastRun: new Date().toISOString() }),
    hintsShown: Math.min(shown + 1, lesson.hints.length),
  };
  await saveProgress(progress);
}

async function reset(lesson: Lesson, yes: boolean): Promise<void> {
  const starters = await generateStarters(lesson);
  const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
  const changed: string[] = [];
  for (const [name, text] of starters) {
    const current = await Deno.readTextFile(`${dir}/${name}`).catch(() => undefined);
    if (current !== text) changed.push(name);
  }
  if (changed.length === 0) {
    console.log(`lessons/${lesson.slug} is already the pristine starter.`);
    return;
  }
  if (!yes) {
    if (!Deno.stdin.isTerminal()) {
      throw new UsageError(`reset would overwrite ${changed.join(", ")}; add --yes to confirm`);
    }
    if (
      !confirm(`Overwrite your ${changed.map((n) => `lessons/${lesson.slug}/${n}`).join(", ")}?`)
    ) {
      console.log("nothing changed");
      return;
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  for (const name of changed) await Deno.writeTextFile(`${dir}/${name}`, starters.get(name)!);
  console.log(`restored ${changed.map((n) => `lessons/${lesson.slug}/${n}`).join(", ")}`);
}

async function sync(): Promise<void> {
  let changed = 0;
  for (const lesson of lessons) {
    const solutions = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
    if (!await Deno.stat(solutions).then(() => true, () => false)) continue;
    const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
    await Deno.mkdir(dir, { recursive: true });
    for (const [name, text] of await generateStarters(lesson)) {
      const current = await Deno.readTextFile(`${dir}/${name}`).catch(() => undefined);
      if (current === text) continue;
      await Deno.writeTextFile(`${dir}/${name}`, text);
      console.log(`wrote lessons/${lesson.slug}/${name}`);
      changed++;
    }
  }
  for (const [file, make] of GENERATED) {
    const path = `${PROJECT_ROOT}/${file}`;
    const current = await Deno.readTextFile(path);
    const next = make(current, lessons);
    if (next === current) continue;
    await Deno.writeTextFile(path, next);
    console.log(`wrote ${file} (from the catalogue)`);
    changed++;
  }
  console.log(
    changed ? `${changed} file(s) regenerated` : "starters and generated files are in sync",
  );
}

async function solution(lesson: Lesson, force: boolean): Promise<void> {
  const entry = (await loadProgress()).lessons[lesson.id];
  if (entry?.status !== "passed" && !force) {
    console.log(
      `Lesson ${lesson.id} has not passed yet, so the reference stays hidden.\n` +
        `  deno task lesson ${Number(lesson.id)}   grade your work\n` +
        `  deno task hint ${Number(lesson.id)}     the next hint\n` +
        `  deno task solution ${Number(lesson.id)} --force   show it anyway`,
    );
    return;
  }
  for (const file of lesson.files) {
    const mine = await Deno.readTextFile(`${PROJECT_ROOT}/lessons/${lesson.slug}/${file}`).catch(
      () => "",
    );
    const theirs = makeReference(
      await Deno.readTextFile(`${PROJECT_ROOT}/solutions/${lesson.slug}/${file}`),
    );
    if (mine === theirs) {
      console.log(`lessons/${lesson.slug}/${file} is the same as the reference.`);
      continue;
    }
    console.log(paint("bold", `--- lessons/${lesson.slug}/${file} (yours)`));
    console.log(paint("bold", `+++ solutions/${lesson.slug}/${file} (reference)`));
    for (const line of diffLines(mine, theirs)) {
      console.log(
        line.startsWith("+")
          ? paint("green", line)
          : line.startsWith("-")
          ? paint("red", line)
          : line,
      );
    }
  }
}

async function runProgram(lesson: Lesson, args: string[], useSolution: boolean): Promise<number> {
  const [name, ...rest] = args;
  const program = lesson.programs.find((p) => p.name === name);
  if (!program) {
    const list = lesson.programs.map((p) => `  ${p.name.padEnd(12)} ${p.about}`).join("\n") ||
      "  (none)";
    console.log(
      `lesson ${lesson.id} programs:\n${list}\nusage: deno task run ${
        Number(lesson.id)
      } PROGRAM [--host H] [--port P]`,
    );
    return name ? 2 : 0;
  }
  const targetRoot = resolveTarget(useSolution ? "solutions" : "lessons");
  // --public asks to bind a host other than loopback: the program checks and warns, and
  // only then does it get the permission to.
  const hostAt = rest.indexOf("--host");
  const publicHost = rest.includes("--public") && hostAt >= 0
    ? withoutBrackets(rest[hostAt + 1] ?? "")
    : undefined;
  const child = new Deno.Command("deno", {
    args: ["run", ...await programArgs(lesson, program, targetRoot, publicHost), ...rest],
    cwd: PROJECT_ROOT,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches the child too (same process group); wait for it to finish.
  Deno.addSignalListener("SIGINT", () => {});
  return (await child.status).code;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      solution: { type: "boolean" },
      target: { type: "string" },
      bad: { type: "string" },
      good: { type: "string" },
      watch: { type: "boolean" },
      verbose: { type: "boolean", short: "v" },
      yes: { type: "boolean", short: "y" },
      force: { type: "boolean" },
      jobs: { type: "string" },
      runs: { type: "string" },
    },
    allowPositionals: true,
    strict: command !== "run",
  });
  switch (command) {
    case "lesson": {
      const lesson = needLesson(positionals[0]);
      const target = String(values.target ?? (values.solution ? "solutions" : "lessons"));
      const variant = values.bad !== undefined
        ? { kind: "bad" as const, name: String(values.bad) }
        : values.good !== undefined
        ? { kind: "good" as const, name: String(values.good) }
        : undefined;
      const grade = () => gradeAndReport(lesson, { target, verbose: !!values.verbose, variant });
      if (values.watch) await watch(lesson, grade);
      return (await grade()).passed ? 0 : 1;
    }
    case "all": {
      let allPassed = true;
      for (const lesson of lessons) {
        const result = await gradeLesson(lesson, {
          target: values.solution ? "solutions" : "lessons",
        });
        const counted = result.checks.filter((c) => !c.skipped);
        const passing = counted.filter((c) => c.ok).length;
        if (!values.solution) await recordGrade(lesson.id, result.passed, passing, counted.length);
        allPassed &&= result.passed;
        const mark = result.passed ? paint("green", "✓") : paint("red", "✗");
        console.log(`${mark} ${lesson.id} ${lesson.title} — ${passing}/${counted.length}`);
      }
      console.log("");
      console.log(renderProgress(lessons, (await loadProgress()).lessons));
      return allPassed ? 0 : 1;
    }
    case "progress":
      console.log(renderProgress(lessons, (await loadProgress()).lessons));
      return 0;
    case "hint":
      await hint(needLesson(positionals[0]));
      return 0;
    case "reset":
      await reset(needLesson(positionals[0]), !!values.yes);
      return 0;
    case "solution":
      await solution(needLesson(positionals[0]), !!values.force);
      return 0;
    case "run": {
      const lesson = needLesson(rest[0]);
      const programArgs = rest.slice(1).filter((a) => a !== "--solution");
      return await runProgram(lesson, programArgs, rest.includes("--solution"));
    }
    case "test":
      return await selfCheck({
        only: positionals.length ? positionals.map((p) => needLesson(p)) : undefined,
        jobs: values.jobs === undefined ? undefined : needJobs(String(values.jobs)),
      });
    case "sync":
      await sync();
      return 0;
    case "bench":
      return await runBench(positionals.map((p) => needLesson(p)));
    case "soak": {
      const results = await soak(positionals.length ? positionals.map(needLesson) : lessons, {
        runs: values.runs === undefined ? undefined : needJobs(String(values.runs)),
        jobs: values.jobs === undefined ? undefined : needJobs(String(values.jobs)),
      });
      console.log(renderSoak(results));
      return results.every((r) => r.passed === r.runs) ? 0 : 1;
    }
    default:
      console.log(USAGE);
      return command ? 2 : 0;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    throw error;
  }
}
