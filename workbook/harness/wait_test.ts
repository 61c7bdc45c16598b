import assert from "node:assert/strict";
import { FROZEN_LOOP_MS, nextTurn, waitFor, waitUntil, whileRunning } from "./wait.ts";

/** Keeps the thread busy for `ms`, as learner code that never awaits would. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

Deno.test("waitFor returns the value, or passes the rejection on", async () => {
  assert.deepEqual(await waitFor(Promise.resolve(7), { timeoutMs: 100 }), {
    status: "done",
    value: 7,
  });
  await assert.rejects(
    waitFor(Promise.reject(new RangeError("boom")), { timeoutMs: 100 }),
    RangeError,
  );
});

Deno.test("waitFor tells a plain deadline from a frozen event loop", async () => {
  const started = performance.now();
  const late = await waitFor(new Promise(() => {}), { timeoutMs: 20 });
  assert.deepEqual(late, { status: "timeout" });
  assert.ok(performance.now() - started >= 19);

  const waiting = waitFor(new Promise(() => {}), { timeoutMs: 10 });
  spin(FROZEN_LOOP_MS + 200); // the deadline's timer cannot fire meanwhile
  const frozen = await waiting;
  assert.equal(frozen.status, "frozen");
  assert.ok(frozen.status === "frozen" && frozen.lateMs > FROZEN_LOOP_MS);
});

Deno.test("waitFor ends at an abort, or at once when the signal was aborted before", async () => {
  const controller = new AbortController();
  const waiting = waitFor(new Promise(() => {}), { timeoutMs: 5000, signal: controller.signal });
  setTimeout(() => controller.abort("stop"), 5);
  const started = performance.now();
  assert.deepEqual(await waiting, { status: "aborted", reason: "stop" });
  assert.ok(performance.now() - started < 1000);
  // Already aborted: even a settled promise does not count, and a rejected one is no
  // unhandled rejection.
  const settled = await waitFor(Promise.resolve(1), { timeoutMs: 50, signal: controller.signal });
  assert.deepEqual(settled, { status: "aborted", reason: "stop" });
  const rejected = await waitFor(Promise.reject(new Error("late")), {
    timeoutMs: 50,
    signal: controller.signal,
  });
  assert.equal(rejected.status, "aborted");
  await nextTurn();
});

Deno.test("waitFor drops a rejection that comes after the deadline (no unhandled rejection)", async () => {
  let reject!: (error: Error) => void;
  const work = new Promise((_, r) => reject = r);
  assert.equal((await waitFor(work, { timeoutMs: 5 })).status, "timeout");
  reject(new Error("too late"));
  await nextTurn();
});

Deno.test("waitUntil wakes on wakeOn, leaves the set as it found it, and returns the check's value", async () => {
  const listeners = new Set<() => void>();
  let value: string | undefined = undefined;
  const waiting = waitUntil(() => value, {
    timeoutMs: 1000,
    wakeOn: listeners,
  });
  assert.equal(listeners.size, 1);
  value = "ready";
  for (const wake of [...listeners]) wake();
  assert.deepEqual(await waiting, { status: "done", value: "ready" });
  assert.equal(listeners.size, 0);
});

Deno.test("waitUntil polls every everyMs, and looks once more when the deadline fires", async () => {
  let looks = 0;
  const counted = await waitUntil(() => ++looks >= 4 ? looks : undefined, {
    timeoutMs: 1000,
    everyMs: 1,
  });
  assert.deepEqual(counted, { status: "done", value: 4 });

  // No wake-up at all: only the last look at the deadline can see the change.
  let ready = false;
  setTimeout(() => ready = true, 1);
  const last = await waitUntil(() => ready || undefined, { timeoutMs: 30 });
  assert.deepEqual(last, { status: "done", value: true });

  const never = await waitUntil(() => undefined, { timeoutMs: 10, everyMs: 2 });
  assert.deepEqual(never, { status: "timeout" });
});

Deno.test("waitUntil: a throw from the check ends the wait; an abort is seen before the first look", async () => {
  let calls = 0;
  const listeners = new Set<() => void>();
  const waiting = waitUntil(() => {
    if (++calls > 1) throw new Error("the connection ended");
    return undefined;
  }, {
    timeoutMs: 1000,
    wakeOn: listeners,
  });
  for (const wake of [...listeners]) wake();
  await assert.rejects(waiting, /the connection ended/);
  assert.equal(listeners.size, 0);

  const controller = new AbortController();
  controller.abort("interrupted");
  let looked = false;
  const aborted = await waitUntil(() => looked = true, {
    timeoutMs: 100,
    signal: controller.signal,
  });
  assert.deepEqual(aborted, { status: "aborted", reason: "interrupted" });
  assert.equal(looked, false);
});

Deno.test("waitUntil reports a frozen event loop", async () => {
  const waiting = waitUntil(() => undefined, { timeoutMs: 10, everyMs: 5 });
  spin(FROZEN_LOOP_MS + 200);
  assert.equal((await waiting).status, "frozen");
});

Deno.test("whileRunning fails with learner code that fails first, and goes on when it returns", async () => {
  let fail!: (error: Error) => void;
  const running = new Promise((_, reject) => fail = reject);
  running.catch(() => {});
  setTimeout(() => fail(new Error("not implemented")), 1);
  await assert.rejects(whileRunning(running, () => new Promise(() => {})), /not implemented/);

  const returned = whileRunning(Promise.resolve("eof"), async () => {
    await nextTurn();
    return "the grader's side finished";
  });
  assert.equal(await returned, "the grader's side finished");
});

Deno.test("nextTurn lets timers due now run, which a resolved promise does not", async () => {
  const order: string[] = [];
  setTimeout(() => order.push("timer"), 0);
  await Promise.resolve();
  order.push("microtask");
  await nextTurn();
  order.push("turn");
  assert.deepEqual(order, ["microtask", "timer", "turn"]);
});

Deno.test("a deadline does not count the time the process waited for a CPU", async () => {
  // A child waits 400 ms for nothing; this test stops it (SIGSTOP) for 300 ms of that, as a
  // machine too busy to run it would. Its deadline comes that much later; its own work would not.
  const child = new Deno.Command("deno", {
    args: [
      "eval",
      `import { waitFor } from "${new URL("./wait.ts", import.meta.url).href}";
       const started = performance.now();
       const waiting = waitFor(new Promise(() => {}), { timeoutMs: 400 });
       console.log("waiting");
       const { status } = await waiting;
       console.log(JSON.stringify({ status, ms: performance.now() - started }));`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("waiting\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    said += value;
  }
  await nextTurn(50);
  child.kill("SIGSTOP");
  await nextTurn(300);
  child.kill("SIGCONT");
  while (true) {
    const { value, done } = await lines.read();
    if (done) break;
    said += value;
  }
  await child.status;
  const result = JSON.parse(said.split("\n").filter(Boolean).at(-1)!);
  assert.equal(result.status, "timeout");
  assert.ok(result.ms >= 400 + 200, `the deadline came after ${result.ms} ms: the stop counted`);
});

Deno.test("onTime tells a wait that ended in time how much run time it used, and only then", async () => {
  const used: number[] = [];
  const onTime = (ms: number) => void used.push(ms);
  const slow = new Promise((resolve) => setTimeout(resolve, 30));
  const started = performance.now();
  assert.equal((await waitFor(slow, { timeoutMs: 1000, onTime })).status, "done");
  const elapsed = performance.now() - started;
  assert.equal(used.length, 1);
  // Run time: the wall time less what the process spent waiting for a CPU (on a busy machine
  // that can be nearly all of it), never more than the wall time.
  assert.ok(used[0] >= 0 && used[0] <= elapsed + 1, `used ${used[0]} ms of ${elapsed} ms`);
  assert.equal((await waitFor(new Promise(() => {}), { timeoutMs: 10, onTime })).status, "timeout");
  let ready = false;
  setTimeout(() => ready = true, 5);
  const polled = await waitUntil(() => ready || undefined, { timeoutMs: 1000, everyMs: 1, onTime });
  assert.equal(polled.status, "done");
  await assert.rejects(waitFor(Promise.reject(new Error("no")), { timeoutMs: 100, onTime }));
  assert.equal(used.length, 2, "a timeout or a rejection reports no margin");
});
