/**
 * The worker thread behind `freeze_watch.ts`. Plain JavaScript, like
 * `freeze_guard_worker.js`: a TypeScript worker is type-checked when spawned.
 *
 * The main thread bumps `shared[0]` every few ms while a check runs and posts
 * `{ check }` when one starts, `{ step }` for each step and `{ check: null }`
 * when it ends. If a running check's ticks stop for `afterMs`, the main
 * thread is frozen (a loop that never awaits, a blocking call): the worker
 * appends the check's verdict to the events file at once, so the runner can
 * show it while deno test still waits for the check's whole budget. Only time
 * the worker itself saw pass, look by look, counts: when the whole process
 * waits for a loaded machine's CPU, the worker's looks come late as well, and
 * that wait is nobody's freeze.
 *
 * @module
 */
let shared;
let afterMs = 2000;
let eventsPath;
let check = null;
let step;
let startedAt = 0;
let lastTicks = -1;
let lastLook = 0;
let frozenFor = 0;
let reported = false;
/** How often the worker looks, in ms; a look that comes later than twice that counts as this. */
const LOOK_MS = 100;

self.onmessage = (event) => {
  const data = event.data;
  if (data.kind === "start") {
    shared = new Int32Array(data.shared);
    afterMs = data.afterMs;
    eventsPath = data.eventsPath;
    setInterval(look, LOOK_MS);
  } else if (data.kind === "check") {
    check = data.check;
    step = undefined;
    startedAt = performance.now();
    lastLook = startedAt;
    frozenFor = 0;
    lastTicks = Atomics.load(shared, 0);
    reported = false;
  } else if (data.kind === "step") {
    step = data.step;
  }
};

function look() {
  if (check === null || reported || !shared) return;
  const ticks = Atomics.load(shared, 0);
  const now = performance.now();
  const seen = Math.min(now - lastLook, 2 * LOOK_MS);
  lastLook = now;
  if (ticks !== lastTicks) {
    lastTicks = ticks;
    frozenFor = 0;
    return;
  }
  frozenFor += seen;
  if (frozenFor < afterMs) return;
  reported = true;
  const report = [
    `step: ${step ?? "(before the first step)"}`,
    "expected: your code to give the event loop a turn (await) within a step's deadline",
    `actual:   the program has not run a single timer or callback for ${
      Math.round(frozenFor)
    } ms: ` +
    "your code kept the CPU busy (or blocked in a call) without ever awaiting",
    "note: a loop that never awaits (e.g. `while (true) { … }` around synchronous code) " +
    "freezes every timer and connection of the program; await inside loops and check their " +
    "exit condition",
  ].join("\n");
  const line = JSON.stringify({
    type: "result",
    check,
    ok: false,
    kind: "frozen",
    step,
    report,
    ms: Math.round(now - startedAt),
  });
  try {
    Deno.writeTextFileSync(eventsPath, line + "\n", { append: true });
  } catch {
    // The runner then learns of the freeze when deno test stops the check.
  }
}
