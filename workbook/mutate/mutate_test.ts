import assert from "node:assert/strict";
import { getLesson } from "../catalogue.ts";
import { clipSpans, lessonSpans, regionSpans } from "./mutate.ts";
import { fingerprint, resultProblems, sameMutant, scoreOf } from "./result.ts";
// @ts-types="./ignore_log_messages.d.ts"
import { isLoggingCall, strykerPlugins } from "./ignore_log_messages.js";

Deno.test("regionSpans: only the lines inside solution regions, markers excluded", () => {
  const text = [
    "given();",
    "  // #region solution first",
    "  a();",
    "  // #endregion solution",
    "more();",
    "  // #region solution empty",
    "  // #endregion solution",
    "  // #region solution second",
    "  b();",
    "  c();",
    "  // #endregion solution",
  ].join("\n");
  assert.deepEqual(regionSpans("x.ts", text), [
    { file: "x.ts", from: 3, to: 3 },
    { file: "x.ts", from: 9, to: 10 },
  ]);
});

Deno.test("clipSpans keeps only the overlap with a line range", () => {
  const spans = [{ file: "a.ts", from: 3, to: 10 }, { file: "b.ts", from: 20, to: 30 }];
  assert.deepEqual(clipSpans(spans, 5, 22), [
    { file: "a.ts", from: 5, to: 10 },
    { file: "b.ts", from: 20, to: 22 },
  ]);
  assert.deepEqual(clipSpans(spans, 11, 19), []);
});

Deno.test("every lesson has solution regions to mutate", async () => {
  for (const id of ["01", "06", "12"]) assert((await lessonSpans(getLesson(id))).length > 0, id);
});

Deno.test("scoreOf counts timeouts as detected and rounds down", () => {
  assert.deepEqual(scoreOf({ killed: 18, timeout: 1, survived: 1, noCoverage: 0 }), 95);
  assert.deepEqual(scoreOf({ killed: 2, timeout: 0, survived: 0, noCoverage: 1 }), 66.6);
  assert.deepEqual(scoreOf({ killed: 0, timeout: 0, survived: 0, noCoverage: 0 }), 100);
});

Deno.test("sameMutant matches file, mutator, original line and replacement", () => {
  const m = {
    file: "a.ts",
    line: 7,
    column: 3,
    mutator: "StringLiteral",
    original: 'x("y");',
    replacement: '""',
  };
  assert(sameMutant({ ...m }, { ...m, line: 99 }));
  assert(!sameMutant({ ...m, replacement: '"z"' }, m));
});

Deno.test("fingerprint is a sha-256 hex digest and stable", async () => {
  const lesson = getLesson("01");
  const a = await fingerprint(lesson);
  assert(/^[0-9a-f]{64}$/.test(a));
  assert.deepEqual(await fingerprint(lesson), a);
});

Deno.test("the ignorer skips logging calls only", () => {
  const call = (object: string, method: string) => ({
    type: "CallExpression",
    callee: {
      type: "MemberExpression",
      computed: false,
      object: { type: "Identifier", name: object },
      property: { type: "Identifier", name: method },
    },
  });
  for (const [o, m] of [["log", "info"], ["chatLog", "warn"], ["console", "error"]]) {
    assert(isLoggingCall(call(o, m)), `${o}.${m}`);
  }
  for (const [o, m] of [["conn", "write"], ["catalog", "info"], ["log", "close"]]) {
    assert(!isLoggingCall(call(o, m)), `${o}.${m}`);
  }
  const [plugin] = strykerPlugins;
  assert.deepEqual(plugin.kind, "Ignore");
  assert(plugin.value.shouldIgnore({ node: call("log", "info") }));
  assert.deepEqual(plugin.value.shouldIgnore({ node: call("conn", "write") }), undefined);
  // `log.info(…);` as a statement: Stryker's "remove the call" mutant sits on the statement.
  const statement = (expression: unknown) => ({ type: "ExpressionStatement", expression });
  assert(plugin.value.shouldIgnore({ node: statement(call("chatLog", "warn")) }));
  assert.deepEqual(
    plugin.value.shouldIgnore({ node: statement(call("conn", "close")) }),
    undefined,
  );
});

Deno.test("a result is stale once what it measured changed, and fails below the target", () => {
  const result = { fingerprint: "a".repeat(64), score: 96.2, survivors: [] };
  assert.deepEqual(resultProblems(result, "a".repeat(64)), []);
  const stale = resultProblems(result, "b".repeat(64));
  assert.equal(stale.length, 1);
  assert.match(stale[0], /stale/);
  const low = resultProblems({ ...result, score: 94.9 }, result.fingerprint);
  assert.match(low[0], /below 95%/);
});
