import assert from "node:assert/strict";
import {
  afterGrade,
  afterHints,
  afterReset,
  type LastGrade,
  loadProgress,
  type Progress,
  saveProgress,
  solutionUnlocked,
} from "./progress.ts";

const pass = (at: string): LastGrade => ({ passed: true, passing: 4, total: 4, failing: [], at });
const fail = (at: string): LastGrade => ({
  passed: false,
  passing: 1,
  total: 4,
  failing: ["echoes"],
  at,
});
const empty: Progress = { lessons: {} };

Deno.test("a lesson once passed stays passed, with its first date and the last result", () => {
  let p = afterGrade(empty, "03", fail("2026-01-01"), { untouched: false });
  assert.equal(p.lessons["03"].status, "failing");
  p = afterGrade(p, "03", pass("2026-01-02"), { untouched: false });
  p = afterGrade(p, "03", fail("2026-01-03"), { untouched: false });
  assert.equal(p.lessons["03"].status, "passed");
  assert.equal(p.lessons["03"].passedAt, "2026-01-02");
  assert.deepEqual(p.lessons["03"].last, fail("2026-01-03"));
});

Deno.test("grading everything leaves an untouched starter not started", () => {
  const p = afterGrade(empty, "05", fail("2026-01-01"), { untouched: true });
  assert.equal(p.lessons["05"], undefined);
  // Graded on purpose (deno task lesson 5), the result is kept, yet the lesson is only started.
  const q = afterGrade(empty, "05", fail("2026-01-01"), { untouched: true, recordUntouched: true });
  assert.equal(q.lessons["05"].status, "started");
  assert.equal(q.lessons["05"].last?.passing, 1);
});

Deno.test("hints shown are remembered once each, by a report or by deno task hint", () => {
  let p = afterHints(empty, "02", ["read:question"]);
  p = afterHints(p, "02", ["read:question", "read:idea"]);
  assert.deepEqual(p.lessons["02"].hintsShown, ["read:question", "read:idea"]);
  p = afterGrade(p, "02", fail("2026-01-01"), { untouched: false });
  assert.deepEqual(p.lessons["02"].hintsShown, ["read:question", "read:idea"]);
});

Deno.test("reset forgets the lesson's progress, and the reference locks again", () => {
  const p = afterGrade(empty, "01", pass("2026-01-01"), { untouched: false });
  assert.equal(solutionUnlocked(p.lessons["01"]), true);
  const q = afterReset(p, "01");
  assert.equal(q.lessons["01"], undefined);
  assert.equal(solutionUnlocked(q.lessons["01"]), false);
});

Deno.test("the solution opens once the lesson ever passed, not before", () => {
  let p = afterGrade(empty, "04", fail("2026-01-01"), { untouched: false });
  assert.equal(solutionUnlocked(p.lessons["04"]), false);
  p = afterGrade(p, "04", pass("2026-01-02"), { untouched: false });
  p = afterGrade(p, "04", fail("2026-01-03"), { untouched: false });
  assert.equal(solutionUnlocked(p.lessons["04"]), true);
});

Deno.test("progress files of the earlier shape load without losing a pass", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/progress.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        lessons: {
          "01": {
            status: "passed",
            passing: 3,
            total: 3,
            lastRun: "x",
            passedAt: "d",
            hintsShown: 2,
          },
        },
      }),
    );
    const p = await loadProgress(path);
    assert.equal(p.lessons["01"].status, "passed");
    assert.deepEqual(p.lessons["01"].hintsShown, []);
    assert.equal(p.lessons["01"].last?.passing, 3);
    await saveProgress(p, `${dir}/again/progress.json`);
    assert.deepEqual(await loadProgress(`${dir}/again/progress.json`), p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
