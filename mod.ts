/**
 * The socket workbook's public module: the lesson catalogue and the small
 * toolkit lesson code may import (as `"workbook"` inside this project).
 *
 * @example List the lessons
 * ```ts
 * import assert from "node:assert/strict";
 * import { lessons } from "workbook";
 *
 * assert.equal(lessons.length, 12);
 * assert.equal(lessons[0].id, "01");
 * assert.equal(lessons.at(-1)!.id, "12");
 * ```
 *
 * @module
 */
export {
  type BatteryProfile,
  docPath,
  getLesson,
  type Lesson,
  type LessonPermissions,
  type LessonProgram,
  lessons,
  type ProgramExtras,
} from "./workbook/catalogue.ts";
export { isTodoError, TodoError } from "./workbook/toolkit/todo.ts";
export {
  type ProcNetTcpFile,
  ProcNetUnavailableError,
  readProcNet,
} from "./workbook/toolkit/procnet.ts";
export {
  type LogLevel,
  type ProgramLogger,
  programLogger,
  setupLogging,
} from "./workbook/toolkit/log.ts";
export {
  isLoopbackHost,
  parseProgramArgs,
  type ProgramArgs,
  publicBindAllowed,
  untilInterrupted,
  withoutBrackets,
} from "./workbook/toolkit/program.ts";
export {
  ACCEPT_PAUSE_MS,
  acceptEach,
  type AcceptLog,
  type AcceptOptions,
  isGoneBeforeAccept,
  isListenerClosed,
  isOutOfDescriptors,
  MAX_ACCEPT_PAUSE_MS,
  sleep,
} from "./workbook/toolkit/accept.ts";
export {
  type ByteReader,
  type ByteWriter,
  closeQuietly,
  isConnectionGone,
  LineTooLongError,
  readLines,
  writeAll,
} from "./workbook/toolkit/lines.ts";
