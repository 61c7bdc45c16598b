/**
 * The learner's progress, kept in the git-ignored `.workbook/progress.json`.
 *
 * @module
 */
import { PROJECT_ROOT } from "../harness/target.ts";

/** Where one lesson stands. */
export interface LessonProgress {
  /** `started`: hints read, never graded yet. */
  status: "started" | "failing" | "passed";
  /** Checks passing / total at the last grading. */
  passing: number;
  total: number;
  lastRun: string;
  /** When the lesson first passed. */
  passedAt?: string;
  /** How many hints `deno task hint N` has shown. */
  hintsShown?: number;
}

/** The whole progress file. */
export interface Progress {
  lessons: Record<string, LessonProgress>;
}

/** Path of the progress file. */
export const PROGRESS_FILE = `${PROJECT_ROOT}/.workbook/progress.json`;

/**
 * Reads progress; a missing or unreadable file is an empty progress.
 *
 * @example
 * ```ts ignore
 * import { loadProgress } from "./progress.ts";
 *
 * console.log(Object.keys((await loadProgress()).lessons));
 * ```
 */
export async function loadProgress(): Promise<Progress> {
  try {
    const data = JSON.parse(await Deno.readTextFile(PROGRESS_FILE));
    return { lessons: data?.lessons ?? {} };
  } catch {
    return { lessons: {} };
  }
}

/** Writes progress (creating `.workbook/`). */
export async function saveProgress(progress: Progress): Promise<void> {
  await Deno.mkdir(`${PROJECT_ROOT}/.workbook`, { recursive: true });
  await Deno.writeTextFile(PROGRESS_FILE, JSON.stringify(progress, null, 2) + "\n");
}

/** Records a grading of the learner's own files. */
export async function recordGrade(
  id: string,
  passed: boolean,
  passing: number,
  total: number,
): Promise<void> {
  const progress = await loadProgress();
  const now = new Date().toISOString();
  const before = progress.lessons[id];
  progress.lessons[id] = {
    ...before,
    status: passed ? "passed" : "failing",
    passing,
    total,
    lastRun: now,
    passedAt: passed ? before?.passedAt ?? now : before?.passedAt,
  };
  await saveProgress(progress);
}
