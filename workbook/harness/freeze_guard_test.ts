/**
 * Tests of the freeze guard and the thread client over real loopback sockets.
 *
 * Run: `deno test --allow-ffi --allow-net=127.0.0.1 --allow-read=. workbook/harness/freeze_guard_test.ts`
 */
import assert from "node:assert/strict";
import { accept, close, ErrnoError, ffiAvailable, listenTcp, read, send } from "../ffi/libc.ts";
import { clientInThread, FreezeGuard } from "./freeze_guard.ts";
import { Transcript } from "./transcript.ts";

// Open libc at module level: the handle would count as a leak inside a test.
const ffi = ffiAvailable();
const ignore = !ffi.ok;

Deno.test({
  name: "FreezeGuard wakes an accept that blocks the main thread",
  ignore,
  async fn() {
    const listener = listenTcp(); // blocking, and nobody will connect
    const guard = await FreezeGuard.start({ port: listener.port, afterMs: 300 });
    try {
      assert.equal(guard.rescued, false);
      const error = (() => {
        try {
          accept(listener.fd);
          return undefined;
        } catch (error) {
          return error;
        }
      })();
      assert.ok(error instanceof ErrnoError, `expected an ErrnoError, got ${error}`);
      assert.equal(guard.rescued, true);
      assert.ok(guard.longestFreezeMs >= 200, `freeze of ${guard.longestFreezeMs} ms`);
    } finally {
      await guard.stop();
      close(listener.fd);
    }
  },
});

Deno.test({
  name: "FreezeGuard stays quiet while the event loop runs",
  ignore,
  async fn() {
    const listener = listenTcp({ nonBlocking: true });
    const guard = await FreezeGuard.start({ port: listener.port, afterMs: 1500 });
    try {
      for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(guard.rescued, false);
      assert.equal(accept(listener.fd), null); // still listening: nothing shut it down
    } finally {
      await guard.stop();
      await guard.stop(); // idempotent
      close(listener.fd);
    }
  },
});

Deno.test({
  name: "clientInThread talks to a blocking server on the main thread",
  ignore,
  async fn() {
    const listener = listenTcp();
    const transcript = new Transcript();
    const payload = new TextEncoder().encode("ping from a thread\n");
    const client = clientInThread({ port: listener.port, payload, transcript, label: "T" });
    try {
      const fd = accept(listener.fd)!; // blocks until the thread connects
      const buffer = new Uint8Array(64);
      let got = 0;
      for (let n; (n = read(fd, buffer.subarray(got))!) > 0;) got += n; // until its half-close
      send(fd, buffer.subarray(0, got));
      close(fd);
      const result = await client.result;
      assert.equal(result.outcome, "eof");
      assert.deepEqual(result.received, payload);
      assert.ok(transcript.entries.some((e) => e.event === "half-close"));
    } finally {
      client.stop();
      close(listener.fd);
    }
  },
});

Deno.test({
  name: "clientInThread reports a server that never answers",
  ignore,
  async fn() {
    const listener = listenTcp({ nonBlocking: true }); // queued by the kernel, never accepted
    const client = clientInThread({
      port: listener.port,
      payload: new Uint8Array([1]),
      timeoutMs: 200,
    });
    try {
      const result = await client.result;
      assert.equal(result.outcome, "timeout");
      assert.equal(result.received.length, 0);
    } finally {
      client.stop();
      close(listener.fd);
    }
  },
});
