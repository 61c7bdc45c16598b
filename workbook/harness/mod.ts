/**
 * The grading harness: everything a lesson suite imports.
 *
 * @module
 */
export * from "./backoff.ts";
export * from "./bytes.ts";
export {
  type FailureDetails,
  type FailureKind,
  GradeFailure,
  isGradeFailure,
  type NoteOptions,
  type NotePlacement,
  withNote,
} from "./failure.ts";
export * from "./freeze_guard.ts";
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
export * from "./wait.ts";
