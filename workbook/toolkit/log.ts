/**
 * Logging for the workbook's programs: one line per event with time, task and
 * message, like `14:03:07.120 INF server[conn 3] client 127.0.0.1:50412 connected`.
 *
 * Built on LogTape (`npm:@logtape/logtape`); lesson code asks for a logger with
 * {@linkcode programLogger} and the program's `main` calls {@linkcode setupLogging}
 * once. Without `setupLogging` LogTape drops every record, so servers started by
 * the grading suites stay quiet unless the runner asks for `--verbose`.
 *
 * @module
 */
import { configure, getConsoleSink, getLogger, getTextFormatter, reset } from "@logtape/logtape";

/**
 * A log level, from the most to the least detailed (LogTape's levels).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { LogLevel } from "workbook";
 *
 * const verbose = true;
 * const level: LogLevel = verbose ? "debug" : "info";
 * assert.equal(level, "debug");
 * ```
 */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/**
 * What {@linkcode programLogger} gives lesson code: a LogTape logger, seen
 * through the methods the lessons use. Each logging method takes a message
 * template whose `{name}` placeholders are filled from `properties`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ProgramLogger, programLogger } from "workbook";
 *
 * const log: ProgramLogger = programLogger("server");
 * log.info("client {peer} connected", { peer: "127.0.0.1:50412" });
 * assert.deepEqual(log.category, ["workbook", "server"]);
 * ```
 */
export interface ProgramLogger {
  /** The logger's category, e.g. `["workbook", "server"]`. */
  readonly category: readonly string[];
  /** Logs detail nobody needs unless debugging (shown with `--verbose`). */
  debug(message: string, properties?: Record<string, unknown>): void;
  /** Logs a normal event: listening, a client connected, a client left. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Logs a problem the program survives, e.g. one client's connection failed. */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Logs a failure, e.g. the server could not start. */
  error(message: string, properties?: Record<string, unknown>): void;
  /** Whether a record of `level` would be shown, to skip costly work otherwise. */
  isEnabledFor(level: LogLevel): boolean;
}

/**
 * The category every workbook logger lives under: the first part of each
 * {@linkcode programLogger}'s category.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LOG_ROOT, programLogger } from "./log.ts";
 *
 * assert.deepEqual(programLogger("server").category, [LOG_ROOT, "server"]);
 * ```
 */
export const LOG_ROOT = "workbook";

/**
 * A logger for one part of a lesson program, e.g. `programLogger("server")`.
 * Until {@linkcode setupLogging} runs, its records go nowhere.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { programLogger } from "workbook";
 *
 * const log = programLogger("server", "conn 1");
 * assert.deepEqual(log.category, ["workbook", "server", "conn 1"]);
 * assert.equal(log.isEnabledFor("error"), false); // nobody called setupLogging: dropped
 * log.info("client {peer} connected", { peer: "127.0.0.1:50412" });
 * ```
 */
export function programLogger(...category: string[]): ProgramLogger {
  return getLogger([LOG_ROOT, ...category]);
}

/**
 * Sends workbook log records to the console. Call once, from a program's main.
 *
 * @param level the lowest level shown (`"debug"` shows every byte count)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { programLogger, resetLogging, setupLogging } from "./log.ts";
 *
 * await setupLogging("info");
 * const log = programLogger("demo");
 * assert.equal(log.isEnabledFor("info"), true);
 * assert.equal(log.isEnabledFor("debug"), false); // below the level: dropped
 * await resetLogging();
 * ```
 */
export async function setupLogging(level: LogLevel = "info"): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      console: getConsoleSink({
        // "14:03:07.120 INF workbook·server listening on 127.0.0.1:9000": strings unquoted.
        formatter: getTextFormatter({
          timestamp: "time",
          value: (value, inspect) => typeof value === "string" ? value : inspect(value),
        }),
      }),
    },
    loggers: [
      { category: [LOG_ROOT], lowestLevel: level, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}

/**
 * Turns logging off again (tests that called {@linkcode setupLogging} use it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { programLogger, resetLogging, setupLogging } from "./log.ts";
 *
 * await setupLogging("debug");
 * assert.equal(programLogger("demo").isEnabledFor("debug"), true);
 * await resetLogging();
 * assert.equal(programLogger("demo").isEnabledFor("fatal"), false);
 * ```
 */
export async function resetLogging(): Promise<void> {
  await reset();
}
