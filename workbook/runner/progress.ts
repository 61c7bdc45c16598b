/**
 * The learner's progress, kept in the git-ignored `.workbook/progress.json`.
 *
 * Honest by rule: a lesson once passed stays passed (with the date of its
 * first pass; the last result is kept beside it), a lesson whose files are
 * still the untouched starter is "not started" whatever grading it saw, and
 * `reset` forgets a lesson's progress. The rules are pure functions of the
 * progress, so the engine tests cover each.
 *
 * @module
 */
import { PROJECT_ROOT } from "../harness/target.ts";

/** The last grading of a lesson's files. */
export interface LastGrade {
  passed: boolean;
  passing: number;
  total: number;
  /** Names of the checks that failed. */
  failing: string[];
  at: string;
}

/** Where one lesson stands. */
export interface LessonProgress {
  /** `started`: hints read or graded while still the starter; `passed` is for good. */
  status: "started" | "failing" | "passed";
  /** When the lesson first passed. */
  passedAt?: string;
  /** The last grading of the learner's own files. */
  last?: LastGrade;
  /** Hint steps already shown (`id:level`), by a report or by `deno task hint`. */
  hintsShown: string[];
}

/** The whole progress file. */
export interface Progress {
  lessons: Record<string, LessonProgress>;
}

/** Path of the progress file. */
export const PROGRESS_FILE = `${PROJECT_ROOT}/.workbook/progress.json`;

/** One lesson's entry from any earlier shape of the file. */
function upgrade(entry: Record<string, unknown>): LessonProgress {
  const status = entry.status === "passed" || entry.status === "failing" ? entry.status : "started";
  const last = entry.last as LastGrade | undefined ??
    (typeof entry.passing === "number"
      ? {
        passed: status === "passed",
        passing: entry.passing,
        total: Number(entry.total ?? 0),
        failing: [],
        at: String(entry.lastRun ?? ""),
      }
      : undefined);
  return {
    status: entry.passedAt ? "passed" : status,
    ...(entry.passedAt ? { passedAt: String(entry.passedAt) } : {}),
    ...(last ? { last } : {}),
    hintsShown: Array.isArray(entry.hintsShown) ? entry.hintsShown.map(String) : [],
  };
}

/**
 * Reads progress; a missing or unreadable file is an empty progress.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadProgress } from "./progress.ts";
 *
 * assert.deepEqual(await loadProgress("/nonexistent/progress.json"), { lessons: {} });
 * ```
 */
export async function loadProgress(path: string = PROGRESS_FILE): Promise<Progress> {
  try {
    const data = JSON.parse(await Deno.readTextFile(path));
    const lessons: Record<string, LessonProgress> = {};
    for (const [id, entry] of Object.entries(data?.lessons ?? {})) {
      lessons[id] = upgrade(entry as Record<string, unknown>);
    }
    return { lessons };
  } catch {
    return { lessons: {} };
  }
}

/** Writes progress (creating its folder). */
export async function saveProgress(
  progress: Progress,
  path: string = PROGRESS_FILE,
): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(progress, null, 2) + "\n");
}

/**
 * Progress after a grading of the learner's files. A lesson that passed once
 * stays passed; a grading of the untouched starter leaves the lesson as it
 * was (or "started"), so grading everything does not mark untouched lessons.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterGrade } from "./progress.ts";
 *
 * const ok = { passed: true, passing: 3, total: 3, failing: [], at: "2026-01-01" };
 * const bad = { passed: false, passing: 2, total: 3, failing: ["x"], at: "2026-01-02" };
 * const once = afterGrade({ lessons: {} }, "03", ok, { untouched: false });
 * const later = afterGrade(once, "03", bad, { untouched: false });
 * assert.deepEqual(later.lessons["03"].status, "passed");
 * assert.deepEqual(later.lessons["03"].passedAt, "2026-01-01");
 * assert.deepEqual(later.lessons["03"].last?.passing, 2);
 * ```
 */
export function afterGrade(
  progress: Progress,
  id: string,
  grade: LastGrade,
  options: { untouched: boolean; recordUntouched?: boolean },
): Progress {
  const before = progress.lessons[id];
  if (options.untouched) {
    if (!options.recordUntouched) return progress;
    const entry = before ?? { status: "started", hintsShown: [] };
    return { lessons: { ...progress.lessons, [id]: { ...entry, last: grade } } };
  }
  const passedAt = before?.passedAt ?? (grade.passed ? grade.at : undefined);
  const entry: LessonProgress = {
    status: passedAt ? "passed" : "failing",
    ...(passedAt ? { passedAt } : {}),
    last: grade,
    hintsShown: before?.hintsShown ?? [],
  };
  return { lessons: { ...progress.lessons, [id]: entry } };
}

/**
 * Progress after hint steps were shown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterHints } from "./progress.ts";
 *
 * const p = afterHints(afterHints({ lessons: {} }, "02", ["a:question"]), "02", ["a:idea"]);
 * assert.deepEqual(p.lessons["02"].hintsShown, ["a:question", "a:idea"]);
 * assert.deepEqual(p.lessons["02"].status, "started");
 * ```
 */
export function afterHints(progress: Progress, id: string, keys: string[]): Progress {
  const entry = progress.lessons[id] ?? { status: "started", hintsShown: [] };
  const hintsShown = [...new Set([...entry.hintsShown, ...keys])];
  return { lessons: { ...progress.lessons, [id]: { ...entry, hintsShown } } };
}

/**
 * Progress after `reset N`: the lesson starts over (hints, results, pass).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { afterReset } from "./progress.ts";
 *
 * const p = afterReset({ lessons: { "01": { status: "passed", hintsShown: [] } } }, "01");
 * assert.deepEqual(p.lessons["01"], undefined);
 * ```
 */
export function afterReset(progress: Progress, id: string): Progress {
  const lessons = { ...progress.lessons };
  delete lessons[id];
  return { lessons };
}

/**
 * Whether `deno task solution N` may show the reference: once the lesson has
 * ever passed (or when the learner insists with `--force`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { solutionUnlocked } from "./progress.ts";
 *
 * assert.deepEqual(solutionUnlocked(undefined), false);
 * assert.deepEqual(solutionUnlocked({ status: "passed", passedAt: "2026-01-01", hintsShown: [] }), true);
 * ```
 */
export function solutionUnlocked(entry: LessonProgress | undefined): boolean {
  return entry?.passedAt !== undefined;
}
