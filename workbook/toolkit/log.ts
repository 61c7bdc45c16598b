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
import {
  configure,
  getConsoleSink,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  reset,
} from "@logtape/logtape";

/** The category every workbook logger lives under. */
export const LOG_ROOT = "workbook";

/**
 * A logger for one part of a lesson program, e.g. `programLogger("server")`.
 *
 * @example
 * ```ts
 * import { programLogger } from "workbook";
 *
 * const log = programLogger("server", "conn 1");
 * log.info("client {peer} connected", { peer: "127.0.0.1:50412" });
 * ```
 */
export function programLogger(...category: string[]): Logger {
  return getLogger([LOG_ROOT, ...category]);
}

/**
 * Sends workbook log records to the console. Call once, from a program's main.
 *
 * @param level the lowest level shown (`"debug"` shows every byte count)
 *
 * @example
 * ```ts
 * import { programLogger, setupLogging } from "workbook";
 *
 * await setupLogging("info");
 * programLogger("demo").info("listening on {host}:{port}", { host: "127.0.0.1", port: 9000 });
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
 * import { resetLogging, setupLogging } from "workbook";
 *
 * await setupLogging("debug");
 * await resetLogging();
 * ```
 */
export async function resetLogging(): Promise<void> {
  await reset();
}
