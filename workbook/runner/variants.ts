/**
 * Known-bad and known-good variants: submissions that test the suites
 * themselves. A known-bad case (`tests/bad/<slug>/<case>/`) is a mistake the
 * suite must reject; a known-good case (`tests/good/<slug>/<case>/`) is a
 * correct submission written another way, which the suite must pass, so a
 * suite cannot quietly demand one particular implementation. A case is the
 * reference solution with a small change, written as `case.json`:
 *
 * ```json
 * {
 *   "why": "reads once and returns: a greeting split over several reads comes back cut",
 *   "file": "sockets.ts",
 *   "replace": [{ "from": "while (true) {", "to": "for (let once = 0; once < 1; once++) {" }],
 *   "expect": "fetchGreeting"
 * }
 * ```
 *
 * Every `from` must occur exactly once in the solution (so a case that no
 * longer applies is an error, not a silent pass). `expect`, if given (bad
 * cases), is a regular expression the failure report must match.
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { WORK_DIR } from "./grade.ts";

/** `bad`: the suite must reject it; `good`: the suite must pass it. */
export type CaseKind = "bad" | "good";

/** A known-bad or known-good variant, as declared in its `case.json`. */
export interface VariantCase {
  lesson: Lesson;
  kind: CaseKind;
  name: string;
  why: string;
  file?: string;
  replace?: { from: string; to: string }[];
  expect?: string;
  /** Absolute path of the case folder. */
  dir: string;
}

/** The cases of one kind of a lesson (`tests/<kind>/<slug>/*`), sorted by name. */
export async function listCases(lesson: Lesson, kind: CaseKind): Promise<VariantCase[]> {
  const root = `${PROJECT_ROOT}/tests/${kind}/${lesson.slug}`;
  const cases: VariantCase[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      if (!entry.isDirectory) continue;
      const dir = `${root}/${entry.name}`;
      const spec = JSON.parse(await Deno.readTextFile(`${dir}/case.json`));
      cases.push({ lesson, kind, name: entry.name, dir, ...spec });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return cases.sort((a, b) => a.name.localeCompare(b.name));
}

/** Copies a lesson's solution files into `dir/<slug>/`. */
export async function copySolution(lesson: Lesson, dir: string): Promise<string> {
  const from = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
  const to = `${dir}/${lesson.slug}`;
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
  return to;
}

/**
 * Builds a gradable directory (laid out like lessons/) for a case, under
 * `.workbook/tmp/`. Returns its path; the caller removes it.
 */
export async function materializeCase(variant: VariantCase): Promise<string> {
  await Deno.mkdir(`${WORK_DIR}/tmp`, { recursive: true });
  const root = await Deno.makeTempDir({
    dir: `${WORK_DIR}/tmp`,
    prefix: `${variant.kind}-${variant.name}-`,
  });
  const lessonDir = await copySolution(variant.lesson, root);
  if (variant.replace?.length) {
    if (!variant.file) throw new Error(`${variant.dir}/case.json: "replace" needs "file"`);
    const path = `${lessonDir}/${variant.file}`;
    let text = await Deno.readTextFile(path);
    for (const { from, to } of variant.replace) {
      const count = text.split(from).length - 1;
      if (count !== 1) {
        throw new Error(
          `${variant.kind} case ${variant.lesson.slug}/${variant.name}: ${
            JSON.stringify(from)
          } occurs ` +
            `${count} times in solutions/${variant.lesson.slug}/${variant.file} (needs exactly 1)`,
        );
      }
      text = text.replace(from, () => to);
    }
    await Deno.writeTextFile(path, text);
  }
  return root;
}
