/**
 * Committed mutation results: what `deno task mutate N` measured, and the
 * equivalent mutants a course author has explained away.
 *
 * - `tests/mutation/<slug>.json` — the last full run: counts, score and every
 *   mutant still alive, with a fingerprint of what produced it (the
 *   solution's files, the suite, the equivalents list). The self-check fails
 *   when the fingerprint no longer matches (re-run `deno task mutate N`), so
 *   a committed score cannot go stale.
 * - `tests/mutation/<slug>.equivalent.json` — mutants no behaviour can tell
 *   apart from the reference, each with a one-line reason. A mutant is named
 *   by file, mutator, the first line of the code it changes (trimmed) and its
 *   replacement, so entries survive edits elsewhere in the file.
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { REGION_END, REGION_START } from "../starter.ts";

/** The score every lesson must reach, over mutants that are not equivalent. */
export const TARGET_SCORE = 95;

/** One mutant, as the workbook records it. */
export interface MutantRecord {
  /** File inside `solutions/<slug>/`. */
  file: string;
  line: number;
  column: number;
  mutator: string;
  /** First line of the original code the mutant changes, trimmed. */
  original: string;
  replacement: string;
}

/** A mutant explained as equivalent. */
export interface EquivalentMutant {
  file: string;
  mutator: string;
  original: string;
  replacement: string;
  /** Why no behaviour can tell it apart from the reference. */
  why: string;
}

/** The committed result of one full mutation run of a lesson. */
export interface MutationResult {
  lesson: string;
  /** sha-256 over the solution files, the suite and the equivalents list. */
  fingerprint: string;
  date: string;
  tool: string;
  total: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  /** Mutants that did not compile or crashed Stryker's own run: not counted. */
  errors: number;
  equivalent: number;
  /** (killed + timeout) / (total − errors − equivalent), in percent, one decimal. */
  score: number;
  survivors: MutantRecord[];
}

/** Where a lesson's committed mutation files live. */
export function mutationPaths(lesson: Lesson): { result: string; equivalent: string } {
  const base = `${PROJECT_ROOT}/tests/mutation/${lesson.slug}`;
  return { result: `${base}.json`, equivalent: `${base}.equivalent.json` };
}

/** The lesson's equivalent mutants (none when the file is absent). */
export async function loadEquivalents(lesson: Lesson): Promise<EquivalentMutant[]> {
  const text = await Deno.readTextFile(mutationPaths(lesson).equivalent).catch(() => "[]");
  return JSON.parse(text);
}

/** True when `entry` names the mutant `m`. */
export function sameMutant(
  entry: Pick<EquivalentMutant, "file" | "mutator" | "original" | "replacement">,
  m: MutantRecord,
): boolean {
  return entry.file === m.file && entry.mutator === m.mutator && entry.original === m.original &&
    entry.replacement === m.replacement;
}

/**
 * The code of a source file as far as mutants can tell: lines that are only
 * a comment (a `//` line, a JSDoc line) are left out, except the region
 * markers, which decide what is mutated. A comment edit leaves a result
 * current; any change to code, or to where a region starts or ends, does not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeOf } from "./result.ts";
 *
 * const a = "/** Doubles. *\/\nexport const f = (n: number) => 2 * n; // twice\n";
 * const b = "// Doubles it.\nexport const f = (n: number) => 2 * n; // twice\n";
 * assert.equal(codeOf(a), codeOf(b));
 * assert.notEqual(codeOf(a), codeOf(a.replace("2 *", "3 *")));
 * assert.match(codeOf("// #region solution f\nx;\n// #endregion solution"), /#region/);
 * ```
 */
export function codeOf(source: string): string {
  return source.split("\n").filter((line) => {
    const text = line.trim();
    if (REGION_START.test(line) || REGION_END.test(line)) return true;
    // A JSDoc line starts with "*" and a space (or is "*" or "*/"); a generator method does not.
    return !(text === "" || text.startsWith("//") || text.startsWith("/*") ||
      /^\*(\s|\/|$)/.test(text));
  }).join("\n");
}

/**
 * The fingerprint of what a mutation result depends on: the code of every
 * file of the lesson's solution and of its suite ({@linkcode codeOf}), and
 * its equivalents list.
 *
 * @example
 * ```ts ignore
 * const print = await fingerprint(getLesson("03"));
 * console.log(print.length); // 64 hex digits
 * ```
 */
export async function fingerprint(lesson: Lesson): Promise<string> {
  const dir = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  const parts: string[] = [];
  for (const name of names.sort()) {
    parts.push(`solutions/${name}\n${codeOf(await Deno.readTextFile(`${dir}/${name}`))}`);
  }
  const suite = await Deno.readTextFile(`${PROJECT_ROOT}/tests/${lesson.slug}_test.ts`);
  parts.push(`suite\n${codeOf(suite)}`);
  const equivalents = await Deno.readTextFile(mutationPaths(lesson).equivalent).catch(() => "");
  parts.push(`equivalent\n${equivalents}`);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(parts.join("\n\u0000\n")),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The score in percent (one decimal) of a set of counts. */
export function scoreOf(
  counts: Pick<
    MutationResult,
    "killed" | "timeout" | "survived" | "noCoverage"
  >,
): number {
  const detected = counts.killed + counts.timeout;
  const valid = detected + counts.survived + counts.noCoverage;
  return valid === 0 ? 100 : Math.floor((detected / valid) * 1000) / 10;
}

/**
 * What is wrong with a lesson's committed mutation result, if anything:
 * missing, stale (its fingerprint no longer matches) or below the target.
 */
export async function mutationProblems(lesson: Lesson): Promise<string[]> {
  const { result: path } = mutationPaths(lesson);
  const text = await Deno.readTextFile(path).catch(() => undefined);
  const rerun = `run \`deno task mutate ${Number(lesson.id)}\``;
  if (text === undefined) return [`no mutation result (${rerun})`];
  return resultProblems(JSON.parse(text), await fingerprint(lesson), {
    rerun,
    shownPath: path.slice(PROJECT_ROOT.length + 1),
  });
}

/**
 * What is wrong with `result` given the fingerprint of the files as they are now.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultProblems } from "./result.ts";
 *
 * const result = { fingerprint: "abc", score: 97, survivors: [] };
 * assert.deepEqual(resultProblems(result, "abc"), []);
 * assert.match(resultProblems(result, "def")[0], /stale/);
 * ```
 */
export function resultProblems(
  result: Pick<MutationResult, "fingerprint" | "score" | "survivors">,
  current: string,
  words: { rerun?: string; shownPath?: string } = {},
): string[] {
  const rerun = words.rerun ?? "run `deno task mutate N`";
  const problems: string[] = [];
  if (result.fingerprint !== current) {
    problems.push(
      `the mutation result is stale: the solution, the suite or the equivalents list changed ` +
        `since it was made (${rerun})`,
    );
  }
  if (result.score < TARGET_SCORE) {
    problems.push(
      `mutation score ${result.score}% is below ${TARGET_SCORE}%: ${result.survivors.length} ` +
        `mutants survive (listed in ${words.shownPath ?? "the result file"})`,
    );
  }
  return problems;
}
