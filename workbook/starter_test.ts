import assert from "node:assert/strict";
import { makeReference, makeStarter, STARTER_HEADER, StarterMarkupError } from "./starter.ts";

const SOLUTION = [
  '// starter: import { TodoError } from "workbook";',
  'import { helper } from "./helper.ts";',
  "export function double(n: number): number {",
  "  // #region solution double",
  "  return helper(2 * n);",
  "  // #endregion solution",
  "}",
].join("\n");

Deno.test("makeStarter replaces regions with TodoError and applies line markers", () => {
  assert.equal(
    makeStarter(SOLUTION, "double.ts"),
    [
      STARTER_HEADER,
      'import { TodoError } from "workbook";',
      'import { helper } from "./helper.ts";',
      "export function double(n: number): number {",
      '  throw new TodoError("double");',
      "}",
    ].join("\n"),
  );
});

Deno.test("makeStarter leaves files without regions alone", () => {
  assert.equal(makeStarter("export const x = 1;\n", "x.ts"), "export const x = 1;\n");
});

Deno.test("makeStarter rejects broken markup", () => {
  assert.throws(() => makeStarter("// #region solution a\n", "a.ts"), StarterMarkupError);
  assert.throws(() => makeStarter("// #endregion solution\n", "a.ts"), StarterMarkupError);
  assert.throws(
    () =>
      makeStarter("function f() {\n  // #region solution f\n  // #endregion solution\n}", "a.ts"),
    /would not import TodoError/,
  );
});

Deno.test("makeReference shows the solution without its authoring marks", () => {
  assert.equal(
    makeReference(SOLUTION),
    [
      STARTER_HEADER,
      'import { helper } from "./helper.ts";',
      "export function double(n: number): number {",
      "  return helper(2 * n);",
      "}",
    ].join("\n"),
  );
  assert.equal(makeReference("export const x = 1;\n"), "export const x = 1;\n");
});
