/**
 * What learner code logged: capture the LogTape records of the workbook's
 * loggers during a check, and show them in a failure.
 *
 * @module
 */
import { configure, reset } from "@logtape/logtape";

/** A LogTape severity, lowest first: `trace`, `debug`, `info`, `warning`, `error`, `fatal`. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/**
 * One log record as a suite sees it: the fields of LogTape's own `LogRecord`
 * (which is assignable to it), named by the workbook so suites need not
 * import LogTape's types.
 */
export interface LogRecord {
  /** The logger's category, e.g. `["workbook", "server"]`. */
  readonly category: readonly string[];
  /** How severe. */
  readonly level: LogLevel;
  /** The message: text parts at even indexes, the values filled in at odd ones. */
  readonly message: readonly unknown[];
  /** The message template as written, before the values were filled in. */
  readonly rawMessage: string | TemplateStringsArray;
  /** When, in ms since the epoch. */
  readonly timestamp: number;
  /** The structured values logged with the message. */
  readonly properties: Record<string, unknown>;
  /** Where in the source the record was made, when LogTape was asked to find out. */
  readonly sourceLocation?: {
    readonly file: string;
    readonly line: number;
    readonly column: number;
  };
}

/**
 * Captures the LogTape records of the workbook's loggers (category
 * `["workbook", …]`, every level) for the rest of the check, and resets
 * LogTape after it. The array fills as learner code logs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLogger } from "@logtape/logtape";
 * import { captureLogs, logText } from "./logs.ts";
 *
 * const cleanups: (() => unknown)[] = [];
 * const records = await captureLogs({ defer: (fn) => void cleanups.push(fn) });
 * getLogger(["workbook", "demo"]).warn("accept failed: {error}", { error: "EMFILE" });
 * assert.equal(records.length, 1);
 * assert.equal(logText(records[0]), "accept failed: EMFILE");
 * for (const fn of cleanups) await fn();
 * ```
 */
export async function captureLogs(t: { defer(fn: () => unknown): void }): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["workbook"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  t.defer(() => reset());
  return records;
}

/**
 * A record's message as one line of text, its values filled in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type LogRecord, logText } from "./logs.ts";
 *
 * const record = { message: ["client ", "127.0.0.1:4000", " left"] } as unknown as LogRecord;
 * assert.equal(logText(record), "client 127.0.0.1:4000 left");
 * ```
 */
export function logText(record: LogRecord): string {
  return record.message.map((part, i) => i % 2 ? String(part) : part).join("");
}

/**
 * Records as the `actual:` of a failure: one `level: text` line each, lined
 * up under the first, or "no log records".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type LogRecord, showLogs } from "./logs.ts";
 *
 * assert.equal(showLogs([]), "no log records");
 * const warning = { level: "warning", message: ["out of descriptors"] } as unknown as LogRecord;
 * assert.equal(showLogs([warning, warning]), "warning: out of descriptors\n          warning: out of descriptors");
 * ```
 */
export function showLogs(records: readonly LogRecord[]): string {
  return records.length === 0
    ? "no log records"
    : records.map((r) => `${r.level}: ${logText(r)}`).join("\n          ");
}
