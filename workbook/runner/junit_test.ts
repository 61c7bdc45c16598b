import assert from "node:assert/strict";
import { parseJunit } from "./junit.ts";

Deno.test("parseJunit reads names, failures and skips, decoding entities", () => {
  const xml = `<testsuites><testsuite>
    <testcase name="a ok" classname="x"></testcase>
    <testcase name="b &gt; c" classname="x">
      <failure message="short">step: read &quot;HELLO\\n&quot; &amp; more</failure>
    </testcase>
    <testcase name="d" classname="x"><skipped/></testcase>
  </testsuite></testsuites>`;
  assert.deepEqual(parseJunit(xml), [
    { name: "a ok", failure: undefined, skipped: false },
    { name: "b > c", failure: 'step: read "HELLO\\n" & more', skipped: false },
    { name: "d", failure: undefined, skipped: true },
  ]);
});
