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

/**
 * The project root (the folder that holds deno.json), without a trailing slash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT } from "./target.ts";
 *
 * assert.ok(Deno.statSync(`${PROJECT_ROOT}/deno.json`).isFile);
 * assert.ok(!PROJECT_ROOT.endsWith("/"));
 * ```
 */
export const PROJECT_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Reads an environment variable without failing when env access is not granted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readEnv } from "./target.ts";
 *
 * Deno.env.set("WORKBOOK_EXAMPLE", "yes");
 * assert.equal(readEnv("WORKBOOK_EXAMPLE"), "yes");
 * Deno.env.delete("WORKBOOK_EXAMPLE");
 * assert.equal(readEnv("WORKBOOK_EXAMPLE"), undefined);
 * ```
 */
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

/**
 * The directory laid out like `lessons/` that is being graded (`WORKBOOK_TARGET`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT, targetRoot } from "./target.ts";
 *
 * const before = Deno.env.get("WORKBOOK_TARGET");
 * Deno.env.set("WORKBOOK_TARGET", "solutions");
 * assert.equal(targetRoot(), `${PROJECT_ROOT}/solutions`);
 * Deno.env.delete("WORKBOOK_TARGET");
 * assert.equal(targetRoot(), `${PROJECT_ROOT}/lessons`);
 * if (before !== undefined) Deno.env.set("WORKBOOK_TARGET", before);
 * ```
 */
export function targetRoot(): string {
  return resolveTarget(readEnv("WORKBOOK_TARGET") ?? "lessons");
}

/**
 * Absolute path of one of the lesson's files in the graded target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { targetFile, targetRoot } from "./target.ts";
 *
 * const lesson = getLesson("01");
 * assert.equal(
 *   targetFile(lesson, lesson.files[0]),
 *   `${targetRoot()}/01-sockets/${lesson.files[0]}`,
 * );
 * ```
 */
export function targetFile(lesson: Lesson, file: string): string {
  return `${targetRoot()}/${lesson.slug}/${file}`;
}

/**
 * A path shown to the learner: relative to the project root when inside it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROJECT_ROOT, shownPath } from "./target.ts";
 *
 * assert.equal(shownPath(`${PROJECT_ROOT}/lessons/01-sockets/x.ts`), "lessons/01-sockets/x.ts");
 * assert.equal(shownPath("/tmp/copy/01-sockets/x.ts"), "/tmp/copy/01-sockets/x.ts");
 * ```
 */
export function shownPath(path: string): string {
  return path.startsWith(PROJECT_ROOT + "/") ? path.slice(PROJECT_ROOT.length + 1) : path;
}

/**
 * How many Unix socket paths a test may use: Deno grants unix sockets by exact path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_SCRATCH, SOCKET_SLOTS, socketSlot } from "./target.ts";
 *
 * assert.equal(SOCKET_SLOTS, 8);
 * assert.equal(socketSlot(DEFAULT_SCRATCH, SOCKET_SLOTS), `${DEFAULT_SCRATCH}/sock-8.sock`);
 * ```
 */
export const SOCKET_SLOTS = 8;

/**
 * The scratch directory used when no runner set `WORKBOOK_SCRATCH` (plain `deno test -P`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_SCRATCH } from "./target.ts";
 *
 * assert.equal(DEFAULT_SCRATCH, "/tmp/socket-workbook");
 * ```
 */
export const DEFAULT_SCRATCH = "/tmp/socket-workbook";

/**
 * The grading scratch directory: temp files and Unix socket files live here.
 * The runner makes a fresh one per run and grants exactly it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_SCRATCH, scratchDir } from "./target.ts";
 *
 * const before = Deno.env.get("WORKBOOK_SCRATCH");
 * Deno.env.delete("WORKBOOK_SCRATCH");
 * assert.equal(scratchDir(), DEFAULT_SCRATCH);
 * Deno.env.set("WORKBOOK_SCRATCH", "/tmp/run-1");
 * assert.equal(scratchDir(), "/tmp/run-1");
 * if (before === undefined) Deno.env.delete("WORKBOOK_SCRATCH");
 * else Deno.env.set("WORKBOOK_SCRATCH", before);
 * ```
 */
export function scratchDir(): string {
  return readEnv("WORKBOOK_SCRATCH") ?? DEFAULT_SCRATCH;
}

/**
 * The Unix socket path of slot `n` (1-based) in a scratch directory: the
 * paths deno.json's test permissions grant.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { socketSlot } from "./target.ts";
 *
 * assert.equal(socketSlot("/tmp/socket-workbook", 1), "/tmp/socket-workbook/sock-1.sock");
 * ```
 */
export function socketSlot(scratch: string, n: number): string {
  return `${scratch}/sock-${n}.sock`;
}

/**
 * The environment variable that gives this process one shard of the suite:
 * `"1/2"` runs the checks whose place in the suite is 1 modulo 2. The runner
 * grades a lesson in a few processes at once, so a check late in the suite
 * does not wait for every check before it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SHARD_ENV } from "./target.ts";
 *
 * assert.equal(SHARD_ENV, "WORKBOOK_SHARD");
 * ```
 */
export const SHARD_ENV = "WORKBOOK_SHARD";
