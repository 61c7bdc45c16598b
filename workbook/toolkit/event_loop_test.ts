/**
 * Tests of the reference event loop (workbook/toolkit/event_loop.ts) over
 * socket pairs. Every wait is bounded; no fixed sleeps decide an outcome.
 * The self-check also grades this loop with lesson 11's EventLoop checks
 * (tests/good/11-select-poll-epoll/toolkit-event-loop), so the two copies
 * cannot drift apart in behaviour.
 *
 * Run: `deno test --allow-ffi workbook/toolkit/event_loop_test.ts`
 *
 * @module
 */
import assert from "node:assert/strict";
import { ffiAvailable, isFdOpen, read, socketPair, sys, write } from "../ffi/libc.ts";
import { EventLoop } from "./event_loop.ts";

// Opened outside any test: the resource sanitizer would count the library handle as a leak.
const ffi = ffiAvailable();

function loopTest(name: string, fn: (loop: EventLoop, fds: number[]) => Promise<void>): void {
  Deno.test({
    name,
    ignore: !ffi.ok,
    async fn() {
      const loop = new EventLoop();
      const fds: number[] = [];
      try {
        await fn(loop, fds);
      } finally {
        await loop.close();
        for (const fd of fds) sys.close(fd);
      }
    },
  });
}

/** Rounds until `done()` or `rounds` rounds, each bounded to 1 s. */
async function runUntil(loop: EventLoop, done: () => boolean, rounds = 50): Promise<void> {
  for (let i = 0; i < rounds && !done(); i++) await loop.runOnce(1000);
}

loopTest("readable callbacks are level-triggered until the data is read", async (loop, fds) => {
  const [left, right] = socketPair({ nonBlocking: true });
  fds.push(left, right);
  let calls = 0;
  loop.watch(right, { readable: true }, () => calls++);
  write(left, new Uint8Array([1, 2, 3]));
  await runUntil(loop, () => calls >= 1);
  assert.equal(await loop.runOnce(0), 1, "still readable: called again");
  assert.equal(read(right, new Uint8Array(8)), 3);
  assert.equal(await loop.runOnce(0), 0, "drained: no call");
  assert.ok(loop.unwatch(right));
  assert.ok(!loop.unwatch(right));
  assert.deepEqual(loop.watchedFds(), []);
});

loopTest("an fd unwatched earlier in the same round gets no callback", async (loop, fds) => {
  const [a1, a2] = socketPair({ nonBlocking: true });
  const [b1, b2] = socketPair({ nonBlocking: true });
  fds.push(a1, a2, b1, b2);
  const called: number[] = [];
  loop.watch(a2, { readable: true }, () => {
    called.push(a2);
    loop.unwatch(b2);
  });
  loop.watch(b2, { readable: true }, () => {
    called.push(b2);
    loop.unwatch(a2);
  });
  write(a1, new Uint8Array([1]));
  write(b1, new Uint8Array([1]));
  await runUntil(loop, () => called.length > 0);
  assert.equal(called.length, 1, `both ready in one round, yet called: ${called}`);
});

loopTest("timers fire in due order; ties in the order set; cleared ones never", async (loop) => {
  const order: string[] = [];
  // 50 ms margins: only a stall that long between two statements could swap two timers.
  loop.setTimer(100, () => order.push("100"));
  loop.setTimer(50, () => order.push("50a"));
  const cancelled = loop.setTimer(75, () => order.push("75"));
  loop.setTimer(50, () => order.push("50b"));
  loop.setTimer(0, () => order.push("0"));
  assert.ok(loop.clearTimer(cancelled));
  assert.ok(!loop.clearTimer(cancelled));
  await loop.run();
  assert.deepEqual(order, ["0", "50a", "50b", "100"]);
});

loopTest("a timer set while the loop waits wakes it; stop() ends run()", async (loop, fds) => {
  const [left, right] = socketPair({ nonBlocking: true });
  fds.push(left, right);
  loop.watch(right, { readable: true }, () => {});
  const running = loop.run(); // waits forever: nothing is ready, no timer
  let fired = false;
  await new Promise<void>((resolve) => {
    setTimeout(() => {
      loop.setTimer(1, () => {
        fired = true;
        loop.stop();
        resolve();
      });
    }, 0);
  });
  await running;
  assert.ok(fired);
});

loopTest("a throwing callback rejects the round; the loop still closes", async (loop, fds) => {
  const [left, right] = socketPair({ nonBlocking: true });
  fds.push(left, right);
  loop.watch(right, { writable: true }, () => {
    throw new Error("callback failed");
  });
  await assert.rejects(loop.run(), /callback failed/);
  assert.throws(() => loop.watch(left, {}, () => {}), RangeError);
});

Deno.test({
  name: "close() frees the loop's own descriptors",
  ignore: !ffi.ok,
  async fn() {
    const loop = new EventLoop();
    const own = loop.ownFds();
    assert.equal(own.length, 3);
    await loop.close();
    await loop.close();
    for (const fd of own) assert.ok(!isFdOpen(fd), `fd ${fd} still open`);
    assert.throws(() => loop.setTimer(1, () => {}), /closed/);
  },
});
