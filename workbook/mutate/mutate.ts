/**
 * `deno task mutate N`: mutation testing of lesson N's suite with StrykerJS.
 *
 * Stryker changes the reference solution one small way at a time (a `>`
 * becomes `>=`, a statement disappears, a `true` becomes `false`) and runs
 * the lesson's suite against each change. A mutant the suite rejects is
 * killed; one it passes survived: a mistake a learner could make and still
 * see "All checks pass".
 *
 * What is mutated — the workbook's one rule: the lines between
 * `// #region solution` and `// #endregion solution` (the code the learner
 * writes; given code is never mutated), except logging calls
 * (`log.info(…)`, `console.error(…)`: see `ignore_log_messages.js`).
 *
 * A full run writes `tests/mutation/<slug>.json` (see `result.ts`);
 * `--lines A-B` mutates only those lines of the lesson's files and writes
 * nothing, for quick work on a few survivors.
 *
 * StrykerJS runs under Deno from the npm registry (no package.json, no
 * node_modules): its plugin discovery is off, the command test runner is
 * built in, and the suite runs through `run_suite.ts`.
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { WORK_DIR } from "../runner/grade.ts";
import { REGION_END, REGION_START } from "../starter.ts";
import {
  fingerprint,
  loadEquivalents,
  type MutantRecord,
  mutationPaths,
  type MutationResult,
  sameMutant,
  scoreOf,
  TARGET_SCORE,
} from "./result.ts";

/** The StrykerJS release the workbook is measured with. */
export const STRYKER = "npm:@stryker-mutator/core@10.1.1";

/** A span of lines (1-based, inclusive) inside one solution file. */
export interface LineSpan {
  file: string;
  from: number;
  to: number;
}

/**
 * The learner's lines of a solution file: the insides of its solution regions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regionSpans } from "./mutate.ts";
 *
 * const text = "a\n  // #region solution f\n  x;\n  y;\n  // #endregion solution\nb";
 * assert.deepEqual(regionSpans("f.ts", text), [{ file: "f.ts", from: 3, to: 4 }]);
 * ```
 */
export function regionSpans(file: string, text: string): LineSpan[] {
  const spans: LineSpan[] = [];
  let start: number | undefined;
  text.split("\n").forEach((line, index) => {
    if (REGION_START.test(line)) start = index + 2;
    else if (REGION_END.test(line) && start !== undefined) {
      if (index >= start) spans.push({ file, from: start, to: index });
      start = undefined;
    }
  });
  return spans;
}

/** Every region span of a lesson's solution files. */
export async function lessonSpans(lesson: Lesson): Promise<LineSpan[]> {
  const dir = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts")) names.push(entry.name);
  }
  const spans: LineSpan[] = [];
  for (const name of names.sort()) {
    spans.push(...regionSpans(name, await Deno.readTextFile(`${dir}/${name}`)));
  }
  return spans;
}

/** Keeps the parts of `spans` inside lines `from`–`to` (of any file). */
export function clipSpans(spans: LineSpan[], from: number, to: number): LineSpan[] {
  return spans
    .map((s) => ({ ...s, from: Math.max(s.from, from), to: Math.min(s.to, to) }))
    .filter((s) => s.from <= s.to);
}

/** Options of {@linkcode runMutation}. */
export interface MutateOptions {
  /** Stryker test-runner processes at once (default 2: the machine's cores). */
  concurrency?: number;
  /** Only these lines (of every file of the lesson); the committed result is not written. */
  lines?: { from: number; to: number };
}

interface StrykerMutant {
  mutatorName: string;
  replacement: string;
  status: string;
  location: { start: { line: number; column: number } };
}

/** Runs Stryker over the lesson and returns the result (written to tests/mutation/ on a full run). */
export async function runMutation(
  lesson: Lesson,
  options: MutateOptions = {},
): Promise<MutationResult> {
  let spans = await lessonSpans(lesson);
  if (options.lines) spans = clipSpans(spans, options.lines.from, options.lines.to);
  if (spans.length === 0) throw new Error(`lesson ${lesson.id}: no solution lines to mutate`);
  const work = `${WORK_DIR}/mutate/${lesson.id}`;
  await Deno.mkdir(work, { recursive: true });
  const report = `${work}/report.json`;
  await Deno.remove(report).catch(() => {});
  const config = {
    testRunner: "command",
    commandRunner: {
      command:
        `deno run --allow-read --allow-write --allow-run=deno --allow-env workbook/mutate/run_suite.ts ${lesson.id}`,
    },
    mutate: spans.map((s) => `solutions/${lesson.slug}/${s.file}:${s.from}-${s.to}`),
    // Plugin discovery scans node_modules, which a Deno project has none of: load only ours.
    plugins: [`${PROJECT_ROOT}/workbook/mutate/ignore_log_messages.js`],
    ignorers: ["log-messages"],
    reporters: ["json", "progress-append-only"],
    jsonReporter: { fileName: report },
    concurrency: options.concurrency ?? 2,
    // Steps have their own deadlines (2 s); a mutant that hangs is ended by them or by this.
    timeoutMS: 20_000,
    tempDirName: ".workbook/stryker-tmp",
    ignorePatterns: [".workbook", ".git", "docs", "lessons", "tests/bad", "tests/good"],
    cleanTempDir: true,
    disableTypeChecks: true,
    logLevel: "info",
    fileLogLevel: "off",
  };
  const configPath = `${work}/stryker.config.json`;
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
  const { success } = await new Deno.Command("deno", {
    args: ["run", "-A", `${STRYKER}/stryker`, "run", configPath],
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).spawn().status;
  if (!success) throw new Error(`Stryker failed for lesson ${lesson.id} (see its output above)`);
  const result = await summarize(lesson, JSON.parse(await Deno.readTextFile(report)));
  if (!options.lines) {
    await Deno.mkdir(`${PROJECT_ROOT}/tests/mutation`, { recursive: true });
    await Deno.writeTextFile(mutationPaths(lesson).result, JSON.stringify(result, null, 2) + "\n");
  }
  return result;
}

async function summarize(
  lesson: Lesson,
  report: { files: Record<string, { source: string; mutants: StrykerMutant[] }> },
): Promise<MutationResult> {
  const equivalents = await loadEquivalents(lesson);
  const counts = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, errors: 0, equivalent: 0 };
  const survivors: MutantRecord[] = [];
  let total = 0;
  for (const [path, { source, mutants }] of Object.entries(report.files)) {
    const lines = source.split("\n");
    const file = path.split("/").at(-1)!;
    for (const m of mutants) {
      if (m.status === "Ignored") continue;
      total++;
      const record: MutantRecord = {
        file,
        line: m.location.start.line,
        column: m.location.start.column,
        mutator: m.mutatorName,
        original: (lines[m.location.start.line - 1] ?? "").trim(),
        replacement: m.replacement.split("\n")[0].trim(),
      };
      switch (m.status) {
        case "Killed":
          counts.killed++;
          break;
        case "Timeout":
          counts.timeout++;
          break;
        case "Survived":
        case "NoCoverage":
          if (equivalents.some((e) => sameMutant(e, record))) counts.equivalent++;
          else {
            survivors.push(record);
            if (m.status === "Survived") counts.survived++;
            else counts.noCoverage++;
          }
          break;
        default:
          counts.errors++;
      }
    }
  }
  survivors.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return {
    lesson: lesson.slug,
    fingerprint: await fingerprint(lesson),
    date: new Date().toISOString().slice(0, 10),
    tool: STRYKER.replace(/^npm:/, ""),
    total,
    ...counts,
    score: scoreOf(counts),
    survivors,
  };
}

/** The result as the author reads it: score, counts, then each survivor. */
export function renderMutation(result: MutationResult): string {
  const lines = [
    `lesson ${result.lesson}: mutation score ${result.score}% (target ${TARGET_SCORE}%)`,
    `  ${result.total} mutants: ${result.killed} killed, ${result.timeout} timed out, ` +
    `${result.survived} survived, ${result.noCoverage} not covered, ` +
    `${result.equivalent} equivalent (listed with reasons), ${result.errors} errors`,
  ];
  if (result.survivors.length) lines.push("  survivors:");
  for (const s of result.survivors) {
    lines.push(
      `    solutions/${result.lesson}/${s.file}:${s.line}:${s.column} ${s.mutator}: ` +
        `${s.original}  →  ${s.replacement}`,
    );
  }
  return lines.join("\n");
}
