/**
 * The target switch: which implementation a suite grades.
 *
 * `WORKBOOK_TARGET` is `lessons` (default: the learner's files), `solutions`
 * (the reference), or a path to any directory laid out like `lessons/`
 * (known-bad variants, a copy of someone's work).
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";

/** The project root (the folder that holds deno.json). */
export const PROJECT_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Reads an environment variable without failing when env access is not granted. */
export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * A target as the runner and the harness both name it — `lessons`,
 * `solutions` or a path — as an absolute directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT, resolveTarget } from "./target.ts";
 *
 * assert.deepEqual(resolveTarget("solutions"), `${PROJECT_ROOT}/solutions`);
 * assert.deepEqual(resolveTarget("/tmp/copy"), "/tmp/copy");
 * ```
 */
export function resolveTarget(target: string): string {
  if (target === "lessons" || target === "solutions") return `${PROJECT_ROOT}/${target}`;
  return target.startsWith("/") ? target : `${Deno.cwd()}/${target}`;
}

/** The directory laid out like `lessons/` that is being graded (`WORKBOOK_TARGET`). */
export function targetRoot(): string {
  return resolveTarget(readEnv("WORKBOOK_TARGET") ?? "lessons");
}

/** Absolute path of one of the lesson's files in the graded target. */
export function targetFile(lesson: Lesson, file: string): string {
  return `${targetRoot()}/${lesson.slug}/${file}`;
}

/** A path shown to the learner: relative to the project root when inside it. */
export function shownPath(path: string): string {
  return path.startsWith(PROJECT_ROOT + "/") ? path.slice(PROJECT_ROOT.length + 1) : path;
}

/** How many Unix socket paths a test may use: Deno grants unix sockets by exact path. */
export const SOCKET_SLOTS = 8;

/** The scratch directory used when no runner set `WORKBOOK_SCRATCH` (plain `deno test -P`). */
export const DEFAULT_SCRATCH = "/tmp/socket-workbook";

/**
 * The grading scratch directory: temp files and Unix socket files live here.
 * The runner makes a fresh one per run and grants exactly it.
 */
export function scratchDir(): string {
  return readEnv("WORKBOOK_SCRATCH") ?? DEFAULT_SCRATCH;
}

/** The Unix socket path of slot `n` (1-based) in a scratch directory. */
export function socketSlot(scratch: string, n: number): string {
  return `${scratch}/sock-${n}.sock`;
}
