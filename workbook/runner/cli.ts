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
import { PROJECT_ROOT, resolveTarget } from "../harness/target.ts";
import { hintText, loadHints, nextHint } from "../hints.ts";
import { type CaseKind, listCases, materializeCase } from "./variants.ts";
import { startersBeside } from "./starters.ts";
import { benchFailures, renderFailureTimings, runBench } from "./bench.ts";
import { diffLines } from "./diff.ts";
import { type Check, gradeLesson, type GradeResult } from "./grade.ts";
import { programArgs } from "./program_run.ts";
import {
  afterGrade,
  afterHints,
  afterReset,
  type LastGrade,
  loadProgress,
  saveProgress,
  solutionUnlocked,
} from "./progress.ts";
import {
  renderCheckLine,
  renderFailure,
  renderHeader,
  renderProgress,
  renderSummary,
  renderTypeErrors,
} from "./report.ts";
import { typeCheckLesson } from "./typecheck.ts";
import { TypeFirst } from "./type_first.ts";
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
  deno task bench [N ...] [--failures [--jobs J]]   (--failures: time to first failure of each known-bad variant)
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
    const learner = resolveTarget(target) === resolveTarget("lessons");
    const root = resolveTarget(target);
    console.log(renderHeader(lesson, root));
    // The type check (about two seconds of CPU after each edit, nothing when the files did not
    // change) runs beside the suite at a lower priority, so it delays no verdict. Passing checks
    // wait for it: its errors come first unless a failing check is known before it ends (that
    // failure is printed at once, the errors when they are known).
    const typeChecked = typeCheckLesson(lesson, root);
    const hints = await loadHints(lesson);
    let progress = await loadProgress();
    let first: Check | undefined;
    let shownChecks = 0;
    const order = new TypeFirst();
    // Each check is printed the moment its verdict is known (passing ones once the type check
    // is done); the first failure in full, with the next unread hint for that very check.
    const onCheck = (check: Check, when: { final: boolean; details?: boolean }) => {
      if (when.details) {
        // The first failure was a leak, shown when deno test marked it; here is what it found.
        if (first?.name === check.name) {
          console.log(paint("bold", `  details of "${check.name}":`));
          console.log(renderFailure(check, undefined, lesson.id));
        }
        return;
      }
      order.check(check.ok, () => {
        shownChecks++;
        console.log(renderCheckLine(check));
      });
      if (check.ok || first) return;
      first = check;
      const shown = progress.lessons[lesson.id]?.hintsShown ?? [];
      const hint = check.kind === "todo" ? undefined : nextHint(hints, shown, [check.name]);
      console.log(renderFailure(check, hint, lesson.id));
      if (hint && learner) progress = afterHints(progress, lesson.id, [hint.key]);
    };
    const grading = gradeLesson(lesson, { target, verbose: options.verbose, onCheck });
    const typeErrors = await typeChecked.catch(async (error) => {
      await grading.catch(() => {});
      throw error;
    });
    order.typeChecked(() => {
      if (!typeErrors.length) return;
      if (shownChecks > 0) {
        console.log(paint("bold", "\n  while those checks ran, the type check found:"));
      }
      console.log(renderTypeErrors(typeErrors));
    });
    const result = await grading;
    if (typeErrors.length && shownChecks > 0) {
      console.log(
        paint(
          "red",
          `fix the ${typeErrors.length} type error(s) shown above first: they often explain failing checks`,
        ),
      );
    }
    if (options.verbose) console.log(result.output);
    if (learner) {
      const grade: LastGrade = {
        passed: result.passed,
        passing: result.summary.passing,
        total: result.summary.counted,
        failing: result.checks.filter((c) => !c.ok).map((c) => c.name),
        at: new Date().toISOString(),
      };
      const untouched = await isUntouched(lesson);
      progress = afterGrade(progress, lesson.id, grade, { untouched, recordUntouched: true });
      await saveProgress(progress);
    }
    console.log(renderSummary(result));
    console.log(paint("gray", `(graded in ${(result.durationMs / 1000).toFixed(2)} s)`));
    return result;
  } finally {
    if (cleanup) await Deno.remove(cleanup, { recursive: true }).catch(() => {});
  }
}

/** True while every learner file of the lesson is still the generated starter. */
async function isUntouched(lesson: Lesson): Promise<boolean> {
  return (await startersBeside(lesson)).every((f) => f.current === f.starter);
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
  const hints = await loadHints(lesson);
  if (hints.length === 0) {
    console.log(`lesson ${lesson.id} has no hints; read ${docPath(lesson)}`);
    return;
  }
  const progress = await loadProgress();
  const entry = progress.lessons[lesson.id];
  // The hints of the checks that failed last come first; the report's hints count as read.
  const step = nextHint(hints, entry?.hintsShown ?? [], entry?.last?.failing);
  if (!step) {
    console.log(
      `You have read all ${hints.length} hints of lesson ${lesson.id} (each at three strengths).\n` +
        `The doc: ${docPath(lesson)}. Once the lesson passes, \`deno task solution ${
          Number(lesson.id)
        }\` shows the reference.`,
    );
    return;
  }
  const answers = step.hint.checks.filter((c) => entry?.last?.failing.includes(c));
  console.log(
    paint("gray", `Hint ${step.number}/${hints.length} (${step.level})`) +
      (answers.length ? paint("gray", ` — for the failing check "${answers[0]}"`) : ""),
  );
  console.log(paint("cyan", hintText(step)));
  await saveProgress(afterHints(progress, lesson.id, [step.key]));
}

async function reset(lesson: Lesson, yes: boolean): Promise<void> {
  const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
  const files = (await startersBeside(lesson)).filter((f) => f.current !== f.starter);
  const changed = files.map((f) => f.name);
  const progress = await loadProgress();
  const hasProgress = progress.lessons[lesson.id] !== undefined;
  if (changed.length === 0 && !hasProgress) {
    console.log(`lessons/${lesson.slug} is already the pristine starter, with no progress.`);
    return;
  }
  const what = [
    ...changed.map((n) => `lessons/${lesson.slug}/${n}`),
    ...(hasProgress ? [`lesson ${lesson.id}'s progress (hints read, results, passed)`] : []),
  ].join(", ");
  if (!yes) {
    if (!Deno.stdin.isTerminal()) {
      throw new UsageError(`reset would start over ${what}; add --yes to confirm`);
    }
    if (!confirm(`Start over ${what}? (your files are kept in a backup)`)) {
      console.log("nothing changed");
      return;
    }
  }
  if (changed.length) {
    const backup = await backupFiles(dir, changed, `${lesson.slug}`);
    for (const f of files) await Deno.writeTextFile(`${dir}/${f.name}`, f.starter);
    console.log(`your files are in ${backup.slice(PROJECT_ROOT.length + 1)}/`);
    console.log(`restored ${changed.map((n) => `lessons/${lesson.slug}/${n}`).join(", ")}`);
  }
  if (hasProgress) {
    await saveProgress(afterReset(progress, lesson.id));
    console.log(`lesson ${lesson.id}'s progress starts over`);
  }
}

/** Copies `names` from `dir` into a fresh `.workbook/backups/<label>-<time>/`; returns it. */
export async function backupFiles(dir: string, names: string[], label: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const backup = `${PROJECT_ROOT}/.workbook/backups/${label}-${stamp}`;
  await Deno.mkdir(backup, { recursive: true });
  for (const name of names) {
    await Deno.copyFile(`${dir}/${name}`, `${backup}/${name}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  return backup;
}

async function sync(): Promise<void> {
  let changed = 0;
  for (const lesson of lessons) {
    const solutions = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
    if (!await Deno.stat(solutions).then(() => true, () => false)) continue;
    const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
    await Deno.mkdir(dir, { recursive: true });
    for (const f of await startersBeside(lesson)) {
      if (f.current === f.starter) continue;
      await Deno.writeTextFile(`${dir}/${f.name}`, f.starter);
      console.log(`wrote lessons/${lesson.slug}/${f.name}`);
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
  if (!solutionUnlocked(entry) && !force) {
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
    const width = Math.max(12, ...lesson.programs.map((p) => p.name.length + 1));
    const list = lesson.programs.map((p) => `  ${p.name.padEnd(width)} ${p.about}`).join("\n") ||
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
      failures: { type: "boolean" },
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
        const { passing, counted } = result.summary;
        if (!values.solution) {
          // A lesson still at its starter stays "not started", whatever grading it saw.
          const grade: LastGrade = {
            passed: result.passed,
            passing,
            total: counted,
            failing: result.checks.filter((c) => !c.ok).map((c) => c.name),
            at: new Date().toISOString(),
          };
          const untouched = await isUntouched(lesson);
          await saveProgress(afterGrade(await loadProgress(), lesson.id, grade, { untouched }));
        }
        allPassed &&= result.passed;
        const mark = result.passed ? paint("green", "✓") : paint("red", "✗");
        console.log(`${mark} ${lesson.id} ${lesson.title} — ${passing}/${counted}`);
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
    case "bench": {
      const chosen = positionals.map((p) => needLesson(p));
      if (!values.failures) return await runBench(chosen);
      const timings = await benchFailures(
        chosen.length ? chosen : [...lessons],
        values.jobs === undefined ? undefined : needJobs(String(values.jobs)),
        (t) =>
          console.log(
            paint(
              "gray",
              `${t.lesson}/${t.name}: first failure ${
                t.firstFailureMs === undefined ? "—" : (t.firstFailureMs / 1000).toFixed(2)
              } s, total ${(t.totalMs / 1000).toFixed(2)} s`,
            ),
          ),
      );
      console.log(renderFailureTimings(timings));
      return 0;
    }
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
