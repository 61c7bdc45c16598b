/**
 * The grading harness: everything a lesson suite imports.
 *
 * - suite registration: {@linkcode lessonSuite} (suite.ts)
 * - the per-check context and its assertions: {@linkcode Grader},
 *   {@linkcode GraderServer} (grader.ts)
 * - learner-facing words for anything thrown: {@linkcode explainError},
 *   {@linkcode describeError} (explain.ts); the failure itself:
 *   {@linkcode GradeFailure} (failure.ts)
 * - recorded connections and byte display: {@linkcode Probe} (probe.ts),
 *   {@linkcode Transcript}, bytes.ts
 * - waits with deadlines, gates, clocks and measures: wait.ts,
 *   listen_gate.ts, backoff.ts, freeze_guard.ts, loopback.ts, descriptors.ts,
 *   heap.ts, logs.ts, typed_input.ts, raw_client.ts
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { Grader, isGradeFailure, showBytes } from "./mod.ts";
 *
 * const t = new Grader(getLesson("01"), "example");
 * const failure = await t.step("parse", () => JSON.parse("{")).catch((e) => e);
 * assert.ok(isGradeFailure(failure));
 * assert.equal(showBytes("hi\n"), '"hi\\n"');
 * await t.cleanup();
 * ```
 *
 * @module
 */
export type {
  BatteryProfile,
  Lesson,
  LessonPermissions,
  LessonProgram,
  ProgramExtras,
} from "../catalogue.ts";
export * from "./backoff.ts";
export * from "./bytes.ts";
export {
  type FailureDetails,
  type FailureKind,
  GradeFailure,
  isGradeFailure,
  type NoteOptions,
  type NotePlacement,
} from "./failure.ts";
export * from "./explain.ts";
export * from "./freeze_guard.ts";
export * from "./suite.ts";
export * from "./grader.ts";
export * from "./listen_gate.ts";
export * from "./logs.ts";
export * from "./probe.ts";
export * from "./target.ts";
export * from "./transcript.ts";
export * from "./descriptors.ts";
export * from "./typed_input.ts";
export * from "./loopback.ts";
export * from "./heap.ts";
export * from "./raw_client.ts";
export * from "./wait.ts";
