import assert from "node:assert/strict";
import { type Hint, hintProblems, nextHint } from "./hints.ts";

const hints: Hint[] = [
  { id: "loop", checks: ["reads in pieces"], question: "q1?", idea: "i1", api: "a1" },
  { id: "close", checks: ["closes", "reads in pieces"], question: "q2?", idea: "i2", api: "a2" },
];

Deno.test("the next hint answers the failing check, weakest first, then goes on", () => {
  assert.equal(nextHint(hints, [], ["closes"])?.key, "close:question");
  assert.equal(nextHint(hints, ["close:question"], ["closes"])?.key, "close:idea");
  const shown = ["close:question", "close:idea", "close:api"];
  // Every hint of the failing check read: the lesson's other hints follow.
  assert.equal(nextHint(hints, shown, ["closes"])?.key, "loop:question");
  assert.equal(nextHint(hints, [...shown, "loop:question", "loop:idea", "loop:api"]), undefined);
});

Deno.test("without a failing check, hints come in the lesson's order", () => {
  assert.equal(nextHint(hints, [])?.key, "loop:question");
});

Deno.test("hint problems: unknown check names, unanswered checks, missing strengths", () => {
  assert.deepEqual(hintProblems(hints, ["reads in pieces", "closes"]), []);
  const problems = hintProblems(
    [...hints, { id: "x", checks: ["nope"], question: "", idea: "i", api: "a" } as Hint],
    ["reads in pieces", "closes", "times out"],
  );
  assert.ok(problems.some((p) => p.includes('"question" is missing')));
  assert.ok(problems.some((p) => p.includes('no check is named "nope"')));
  assert.ok(problems.some((p) => p.includes('no hint answers the check "times out"')));
});
