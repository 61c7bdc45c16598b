import assert from "node:assert/strict";
import { makeReference, makeStarter, StarterMarkupError } from "./starter.ts";

const SOLUTION = [
  'import { helper } from "workbook";',
  "export function double(n: number): number {",
  "  // #region solution double",
  "  return helper(2 * n);",
  "  // #endregion solution",
  "}",
].join("\n");

Deno.test("makeStarter replaces regions with the TodoError global, adding nothing else", () => {
  assert.equal(
    makeStarter(SOLUTION, "double.ts"),
    [
      'import { helper } from "workbook";',
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
    () => makeStarter("// #region solution a\n// #region solution b\n", "a.ts"),
    /region inside region/,
  );
});

Deno.test("makeReference is the learner's finished file: code, no authoring marks", () => {
  assert.equal(
    makeReference(SOLUTION),
    [
      'import { helper } from "workbook";',
      "export function double(n: number): number {",
      "  return helper(2 * n);",
      "}",
    ].join("\n"),
  );
  assert.equal(makeReference("export const x = 1;\n"), "export const x = 1;\n");
});

Deno.test("the TodoError global is installed by the toolkit and caught as not implemented", async () => {
  const { isTodoError } = await import("./toolkit/todo.ts");
  const error = new TodoError("double");
  assert.equal(isTodoError(error), true);
  assert.equal(error.message, "double is not implemented yet");
});
