import assert from "node:assert/strict";
import { isGradeFailure } from "./failure.ts";
import { Transcript } from "./transcript.ts";
import { openUdpProbe, UdpProbe } from "./udp_probe.ts";

function context() {
  const cleanups: (() => unknown)[] = [];
  return {
    transcript: new Transcript(),
    signal: new AbortController().signal,
    defer: (fn: () => unknown) => void cleanups.push(fn),
    async cleanup() {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}

Deno.test("UdpProbe sends, receives in order and records both in the transcript", async () => {
  const t = context();
  const a = openUdpProbe(t, "A");
  const b = openUdpProbe(t, "B");
  try {
    await a.send("one", b.addr);
    await a.send("two\n", b.addr);
    const first = await b.next();
    assert.equal(first.text, "one");
    assert.equal(first.from.port, a.addr.port);
    await b.expectNext("two\n");
    assert.equal(b.received.length, 2);
    assert.equal(b.queued.length, 0);
    const text = t.transcript.format();
    assert.match(text, /A\s+→ 3 bytes\s+"one"/);
    assert.match(text, /B\s+← 4 bytes\s+"two\\n"/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("UdpProbe.expectNext names the datagram that came instead, with the explanation", async () => {
  const t = context();
  const a = openUdpProbe(t, "A");
  const b = openUdpProbe(t, "B");
  try {
    await a.send("hb", b.addr);
    const error = await b.expectNext("hello", {
      explain: (got) => got.text === "hb" ? "heartbeats are not messages" : undefined,
    }).catch((e) => e);
    assert.ok(isGradeFailure(error));
    assert.match(error.message, /"hello"/);
    assert.match(error.message, /actual: {3}"hb" from 127\.0\.0\.1:\d+/);
    assert.match(error.message, /note: heartbeats are not messages/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("UdpProbe.next times out with a readable failure when nothing comes", async () => {
  const t = context();
  const probe = new UdpProbe("lonely", t);
  try {
    const error = await probe.next({ timeoutMs: 30, step: "wait for a reply" }).catch((e) => e);
    assert.ok(isGradeFailure(error));
    assert.match(error.message, /step: wait for a reply/);
    assert.match(error.message, /lonely had received no datagram at all/);
  } finally {
    await probe.close();
    await probe.close();
  }
});
