import assert from "node:assert/strict";
import { seededRandom, showBytes, showDifference, splitBytes, toBytes } from "./bytes.ts";

Deno.test("showBytes escapes control bytes and keeps UTF-8 characters", () => {
  assert.equal(
    showBytes(new Uint8Array([0, 0, 0, 2, 0x68, 0x69, 0x0a])),
    '"\\x00\\x00\\x00\\x02hi\\n"',
  );
  assert.equal(showBytes("é世\r\n"), '"é世\\r\\n"');
  assert.equal(showBytes(new Uint8Array([0xc3])), '"\\xc3"');
  assert.equal(showBytes("abcdef", 3), '"abc"… (3 more bytes)');
});

Deno.test("showDifference puts the caret under the first differing byte", () => {
  const lines = showDifference("HELLO\n", "HELXO\n").split("\n");
  assert.equal(lines[0], 'expected: "HELLO\\n"');
  assert.equal(lines[1], 'actual:   "HELXO\\n"');
  assert.equal(lines[2].indexOf("^"), lines[1].indexOf("X"));
  assert.match(showDifference("HELLO\n", "HEL"), /your bytes end here, after 3 of 6/);
});

Deno.test("splitBytes covers every byte once, in order", () => {
  const data = toBytes("the quick brown fox");
  for (const how of ["whole", "bytes", [3, 1], { seed: 7 }] as const) {
    const chunks = splitBytes(data, how as Parameters<typeof splitBytes>[1]);
    assert.deepEqual(new Uint8Array(chunks.flatMap((c) => [...c])), data);
  }
  assert.equal(splitBytes(data, "bytes").length, data.length);
  assert.deepEqual(
    splitBytes(data, { seed: 7 }).map((c) => c.length),
    splitBytes(data, { seed: 7 }).map((c) => c.length),
  );
});

Deno.test("seededRandom is reproducible and in [0, 1)", () => {
  const a = seededRandom(1), b = seededRandom(1);
  for (let i = 0; i < 100; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});
