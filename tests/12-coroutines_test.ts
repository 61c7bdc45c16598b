/**
 * Grading suite of lesson 12 — coroutines from the ground up.
 * Run it with `deno task lesson 12`.
 *
 * Greenlets and the plain scheduler are pure: they run on a virtual clock
 * that jumps forward when the scheduler sleeps, so no check waits for real
 * time. The hub checks run real sockets on lesson 11's event loop (the
 * workbook's copy), on one thread with the grader's clients.
 *
 * The 1000-connection check raises the soft RLIMIT_NOFILE to the hard limit
 * (and restores it). Each connection costs two descriptors in this process
 * (the grader's end and the server's), so when the limit allows 1000 at once
 * they are all open together; otherwise they come in overlapping batches as
 * large as the limit allows (the report says which).
 */
import { describeError, type Grader, lessonSuite, withNote } from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/12-coroutines/coroutines.ts";
import {
  ffiAvailable,
  getrlimit,
  isFdOpen,
  raiseFileLimit,
  read,
  setrlimit,
  socketPair,
  sys,
  write,
} from "workbook/libc";

// Open libc before any test: the resource sanitizer would call the library handle a leak.
const ffi = ffiAvailable();
const ffiSkip = ffi.ok ? undefined : `the libc FFI bindings are not usable here: ${ffi.reason}`;

const suite = lessonSuite("12");
const load = (t: Grader) => t.load<typeof Lesson>();
type Coroutine<T = unknown> = Lesson.Coroutine<T>;

/** A clock that never waits: sleep(ms) moves it forward at once. */
class VirtualClock {
  #now = 0;
  now = (): number => this.#now;
  sleep = (ms: number): Promise<void> => {
    this.#now += Math.max(0, ms);
    return Promise.resolve();
  };
}

// ---------------------------------------------------------------------------
// Greenlets
// ---------------------------------------------------------------------------

suite.test("Greenlet: two greenlets switch back and forth, handing values, in order", async (t) => {
  const { Greenlet, switchTo } = await load(t);
  const log: string[] = [];
  const ping: Lesson.Greenlet = new Greenlet(function* (first) {
    let n = first as number;
    for (let i = 0; i < 3; i++) {
      log.push(`ping ${n}`);
      n = (yield switchTo(pong, n + 1)) as number;
    }
    return `ping done at ${n}`;
  }, { name: "ping" });
  const pong: Lesson.Greenlet = new Greenlet(function* (first) {
    let n = first as number;
    for (;;) {
      log.push(`pong ${n}`);
      n = (yield switchTo(ping, n + 1)) as number;
    }
  }, { name: "pong" });
  const result = await t.step("ping.switch(0)", () => ping.switch(0));
  t.expectEqual(
    log,
    ["ping 0", "pong 1", "ping 2", "pong 3", "ping 4", "pong 5"],
    "the switches, in order",
    "yield switchTo(target, value) hands control to target; the value comes out of target's own " +
      "yield (or is the argument of a greenlet that has not started yet)",
  );
  t.expectEqual(result, "ping done at 6", "what ping.switch(0) returned (ping's return value)");
  t.expectEqual(
    [ping.state, pong.state],
    ["dead", "suspended"],
    "[ping.state, pong.state] afterwards",
  );
});

suite.test("Greenlet: a finished greenlet's value goes to its parent; so does a switch to a dead one", async (t) => {
  const { Greenlet, switchTo } = await load(t);
  const log: string[] = [];
  const parent: Lesson.Greenlet = new Greenlet(function* () {
    const fromChild = yield switchTo(child, "go");
    log.push(`parent got ${String(fromChild)}`);
    const again = yield switchTo(child, "once more");
    log.push(`parent got ${String(again)} from switching to a dead child`);
    return "parent done";
  }, { name: "parent" });
  const child: Lesson.Greenlet = new Greenlet(function* (first) {
    yield* [];
    log.push(`child started with ${String(first)}`);
    return "child's result";
  }, { name: "child", parent });
  const result = await t.step("parent.switch()", () => parent.switch());
  t.expectEqual(
    log,
    [
      "child started with go",
      "parent got child's result",
      "parent got once more from switching to a dead child",
    ],
    "what happened, in order",
    "a greenlet that returns hands its value to its parent (here: not MAIN); a switch to a " +
      "dead greenlet goes to its parent instead, with the same value",
  );
  t.expectEqual(result, "parent done", "what parent.switch() returned");
});

suite.test("Greenlet: an error goes to the parent; switch() inside a body is refused", async (t) => {
  const { Greenlet, switchTo } = await load(t);
  const log: string[] = [];
  const catcher: Lesson.Greenlet = new Greenlet(function* () {
    try {
      yield switchTo(thrower, undefined);
    } catch (error) {
      log.push(`caught ${(error as Error).message}`);
    }
    return "caught it";
  }, { name: "catcher" });
  const thrower: Lesson.Greenlet = new Greenlet(function* () {
    yield* [];
    throw new Error("thrower failed");
  }, { name: "thrower", parent: catcher });
  const result = await t.step("catcher.switch()", () => catcher.switch());
  t.expectEqual(
    log,
    ["caught thrower failed"],
    "what the parent saw",
    "throw the error at the parent's yield (generator.throw)",
  );
  t.expectEqual(result, "caught it", "what catcher.switch() returned");

  const orphan = new Greenlet(function* () {
    yield* [];
    throw new Error("nobody catches this");
  }, { name: "orphan" });
  const error = await t.expectThrows(
    "orphan.switch(): its parent is MAIN",
    () => orphan.switch(),
    "the greenlet's error, thrown out of switch()",
  );
  t.check(error instanceof Error && error.message === "nobody catches this", {
    step: "the error switch() threw",
    expected: "the greenlet's own error",
    actual: describeError(error),
  });

  const other = new Greenlet(function* () {
    yield* [];
    return 1;
  }, { name: "other" });
  const nested = new Greenlet(function* () {
    yield* [];
    return other.switch(); // wrong: must be `yield switchTo(other)`
  }, { name: "nested" });
  const refused = await t.expectThrows(
    "nested.switch(), whose body calls other.switch() directly",
    () => nested.switch(),
    "an error telling to yield switchTo(other, value) instead",
  );
  t.check(/switchTo/.test(refused instanceof Error ? refused.message : String(refused)), {
    step: "the error's message",
    expected: "a message that points to yield switchTo(...)",
    actual: describeError(refused),
  });
});

// ---------------------------------------------------------------------------
// The scheduler
// ---------------------------------------------------------------------------

async function newScheduler(t: Grader) {
  const lesson = await load(t);
  const clock = new VirtualClock();
  const scheduler = await t.step(
    "new Scheduler({ clock }) (a virtual clock: sleeping takes no real time)",
    () => new lesson.Scheduler({ clock }),
  );
  return { lesson, clock, scheduler };
}

/** Runs the scheduler to the end inside a step. */
async function runAll(t: Grader, scheduler: Lesson.Scheduler, note?: string): Promise<void> {
  const running = t.step("scheduler.run()", () => scheduler.run());
  await (note ? withNote(running, note) : running);
}

suite.test("Scheduler: round-robin — each ready task runs once per round, in order", async (t) => {
  const { scheduler } = await newScheduler(t);
  const log: string[] = [];
  const worker = (name: string, spawnsD: boolean) =>
    function* (): Coroutine<string> {
      for (let i = 1; i <= 3; i++) {
        log.push(`${name}${i}`);
        if (spawnsD && i === 1) scheduler.spawn(worker("D", false), "D");
        yield;
      }
      return `${name} finished`;
    };
  const tasks = await t.step("spawn A (which spawns D in its first turn), B and C", () => [
    scheduler.spawn(worker("A", true), "A"),
    scheduler.spawn(worker("B", false), "B"),
    scheduler.spawn(worker("C", false), "C"),
  ]);
  await runAll(t, scheduler);
  t.expectEqual(
    log,
    ["A1", "B1", "C1", "D1", "A2", "B2", "C2", "D2", "A3", "B3", "C3", "D3"],
    "the order the tasks ran in",
    "a bare yield puts the task at the BACK of the ready queue; a new task goes to the back too",
  );
  t.expectEqual(
    tasks.map((task) => [task.state, task.result]),
    [["done", "A finished"], ["done", "B finished"], ["done", "C finished"]],
    "[state, result] of A, B and C",
  );
});

suite.test("Scheduler: sleepers wake in order of wake time, on an injected clock", async (t) => {
  const { lesson, clock, scheduler } = await newScheduler(t);
  const log: string[] = [];
  const sleeper = (name: string, ...naps: number[]) =>
    function* (): Coroutine<void> {
      for (const ms of naps) {
        yield lesson.sleep(ms);
        log.push(`${name} woke at ${clock.now()}`);
      }
    };
  await t.step(
    "spawn A sleep(30), B sleep(10), C sleep(20), D sleep(10), E sleep(5) then sleep(20)",
    () => {
      scheduler.spawn(sleeper("A", 30), "A");
      scheduler.spawn(sleeper("B", 10), "B");
      scheduler.spawn(sleeper("C", 20), "C");
      scheduler.spawn(sleeper("D", 10), "D");
      scheduler.spawn(sleeper("E", 5, 20), "E");
    },
  );
  await runAll(t, scheduler);
  t.expectEqual(
    log,
    [
      "E woke at 5",
      "B woke at 10",
      "D woke at 10",
      "C woke at 20",
      "E woke at 25",
      "A woke at 30",
    ],
    "who woke when",
    "keep the sleepers sorted by wake time (now + ms), not by the order they fell asleep; equal " +
      "wake times keep that order (B before D)",
  );
  t.expectEqual(
    clock.now(),
    30,
    "the virtual clock after run()",
    "sleep on the clock you are given",
  );
});

suite.test("Scheduler: join waits for a task's result; a finished task is joined at once", async (t) => {
  const { lesson, clock, scheduler } = await newScheduler(t);
  const log: string[] = [];
  const child = await t.step(
    "spawn a child that sleeps 10 ms and returns 42",
    () =>
      scheduler.spawn(function* (): Coroutine<number> {
        yield lesson.sleep(10);
        return 42;
      }, "child"),
  );
  const parent = await t.step(
    "spawn a parent that joins it",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        const value = yield lesson.join(child);
        log.push(`parent got ${value} at ${clock.now()}`);
      }, "parent"),
  );
  const late = await t.step(
    "spawn a late joiner that sleeps 20 ms first",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        yield lesson.sleep(20);
        const value = yield lesson.join(child);
        log.push(`late joiner got ${value} at ${clock.now()}`);
      }, "late joiner"),
  );
  const selfish: Lesson.Task = await t.step(
    "spawn a task that joins itself",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        try {
          yield lesson.join(selfish);
        } catch (error) {
          log.push(`self-join refused: ${error instanceof Error}`);
        }
      }, "selfish"),
  );
  await runAll(t, scheduler);
  t.expectEqual(
    log,
    ["self-join refused: true", "parent got 42 at 10", "late joiner got 42 at 20"],
    "what the joiners saw",
    "when a task ends, every task in its joiners list becomes ready with the result; joining a " +
      "task that has ended returns its result at once",
  );
  t.expectEqual(
    [parent.state, late.state],
    ["done", "done"],
    "[parent.state, late.state] after run()",
    "a joiner that is never made ready stays 'joining' forever: run() ends with it stuck",
  );
});

suite.test("Scheduler: a coroutine that throws fails alone; join rethrows its error", async (t) => {
  const { lesson, scheduler } = await newScheduler(t);
  const log: string[] = [];
  const failing = await t.step(
    "spawn a task that yields once, then throws",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        yield;
        throw new Error("boom");
      }, "failing"),
  );
  await t.step("spawn a watcher that joins it, and a worker that counts to 3", () => {
    scheduler.spawn(function* (): Coroutine<void> {
      try {
        yield lesson.join(failing);
        log.push("watcher: no error?");
      } catch (error) {
        log.push(`watcher caught ${(error as Error).message}`);
      }
    }, "watcher");
    scheduler.spawn(function* (): Coroutine<void> {
      for (let i = 1; i <= 3; i++) {
        log.push(`worker ${i}`);
        yield;
      }
    }, "worker");
  });
  await runAll(
    t,
    scheduler,
    "catch what a coroutine throws in step(): the task is 'failed' and the others go on",
  );
  t.expectEqual(
    log,
    ["worker 1", "worker 2", "watcher caught boom", "worker 3"],
    "what the others did",
    "the failed task's joiners get its error thrown at their yield join(...)",
  );
  t.check(
    failing.state === "failed" && failing.error instanceof Error &&
      failing.error.message === "boom",
    {
      step: "the failing task afterwards",
      expected: 'state "failed", error: the Error("boom") it threw',
      actual: `state ${JSON.stringify(failing.state)}, error ${describeError(failing.error)}`,
    },
  );
});

suite.test("Scheduler: kill() throws TaskKilled into a sleeping task; its finally runs", async (t) => {
  const { lesson, clock, scheduler } = await newScheduler(t);
  const log: string[] = [];
  const victim = await t.step(
    "spawn a task that sleeps 1000 ms in a try/finally",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        try {
          yield lesson.sleep(1000);
          log.push("victim woke up (it should not have)");
        } finally {
          log.push(`victim's finally at ${clock.now()}`);
        }
      }, "victim"),
  );
  await t.step(
    "spawn a killer that sleeps 5 ms, kills it, then joins it",
    () =>
      scheduler.spawn(function* (): Coroutine<void> {
        yield lesson.sleep(5);
        scheduler.kill(victim);
        try {
          yield lesson.join(victim);
        } catch (error) {
          log.push(`killer: join threw ${(error as Error).name}`);
        }
      }, "killer"),
  );
  await runAll(t, scheduler);
  t.expectEqual(
    log,
    ["victim's finally at 5", "killer: join threw TaskKilled"],
    "what happened",
    "kill takes the task out of the sleepers and makes it ready with a TaskKilled error, thrown " +
      "at its yield",
  );
  t.expectEqual(
    clock.now(),
    5,
    "the clock after run()",
    "a killed sleeper must leave the sleepers list",
  );
});

// ---------------------------------------------------------------------------
// The hub: coroutines on the event loop
// ---------------------------------------------------------------------------

async function newHub(t: Grader) {
  const lesson = await load(t);
  const hub = await t.step("new Hub()", () => new lesson.Hub());
  t.defer(() => hub.close());
  return { lesson, hub };
}

suite.test("Hub: a coroutine waits for a readable fd while the others run", async (t) => {
  const { lesson, hub } = await newHub(t);
  const [left, right] = socketPair({ nonBlocking: true });
  t.defer(() => {
    sys.close(left);
    sys.close(right);
  });
  const log: string[] = [];
  await t.step(
    "spawn a reader (yield readable(fd), then read) and a ticker that writes last",
    () => {
      hub.spawn(function* (): Coroutine<void> {
        log.push("reader waits");
        yield lesson.readable(right);
        const buffer = new Uint8Array(16);
        log.push(`reader read ${read(right, buffer)} bytes`);
      }, "reader");
      hub.spawn(function* (): Coroutine<void> {
        for (let i = 1; i <= 3; i++) {
          log.push(`tick ${i}`);
          yield lesson.sleep(1);
        }
        write(left, new TextEncoder().encode("ping"));
        log.push("ticker wrote");
      }, "ticker");
    },
  );
  await withNote(
    t.step("hub.run()", () => hub.run(), { timeoutMs: 3000 }),
    "yield readable(fd): watch fd on hub.loop; its callback unwatches it and makes the task ready",
  );
  t.expectEqual(
    log,
    ["reader waits", "tick 1", "tick 2", "tick 3", "ticker wrote", "reader read 4 bytes"],
    "what happened, in order",
  );
  t.expectEqual(
    hub.loop.watchedFds(),
    [],
    "hub.loop.watchedFds() afterwards",
    "unwatch once woken",
  );
}, { skip: ffiSkip });

suite.test(
  "Hub: the green echo server echoes (1 byte at a time, then 16 KiB) and closes at EOF",
  async (t) => {
    const { lesson, hub } = await newHub(t);
    const server = await t.step(
      "startGreenEchoServer(hub)",
      () => lesson.startGreenEchoServer(hub),
    );
    t.defer(() => server.close());
    const running = hub.run();
    running.catch(() => {}); // looked at below
    const client = await t.connect(server.addr, "client");
    const line = "hello, coroutines\n";
    await client.send(line, { split: "bytes" });
    await client.expect(line, { step: "the echo of a line sent 1 byte at a time" });
    const block = new TextEncoder().encode("0123456789abcdef".repeat(1024));
    await client.send(block);
    await client.expect(block, { step: "the echo of 16 KiB in one write" });
    await client.closeWrite();
    await withNote(
      client.expectEnd({ cleanly: true, step: "the server closes after the client's EOF" }),
      "greenRead returns 0 at EOF: leave the loop; close the fd in a finally",
    );
    t.expectEqual(server.live, 0, "server.live after the client left");
    await t.step("server.close()", () => server.close());
    await t.step("hub.run() returns once every task has ended", () => running, { timeoutMs: 3000 });
  },
  { skip: ffiSkip },
);

suite.test("Hub: a client that resets ends its own coroutine only", async (t) => {
  const { lesson, hub } = await newHub(t);
  const server = await t.step("startGreenEchoServer(hub)", () => lesson.startGreenEchoServer(hub));
  t.defer(() => server.close());
  const running = hub.run();
  running.catch(() => {});
  const steady = await t.connect(server.addr, "steady");
  await steady.send("before\n");
  await steady.expect("before\n");
  await t.reset(server.addr, "resetting client", "x".repeat(64 * 1024));
  await t.eventually(
    "your server after the reset",
    () => server.accepted === 2 && server.live === 1,
    {
      expected: "2 accepted, 1 live (the steady client)",
      actual: () => `${server.accepted} accepted, ${server.live} live`,
      note: "a reset (ECONNRESET, EPIPE) ends that connection's coroutine: catch it, close the fd",
    },
  );
  await steady.send("after\n");
  await steady.expect("after\n", { step: "the steady client is still served" });
  await t.step("server.close()", () => server.close());
  await t.step("hub.run() returns", () => running, { timeoutMs: 3000 });
}, { skip: ffiSkip });

suite.test("Hub: close() kills every coroutine, closes every fd; clients see EOF", async (t) => {
  const { lesson, hub } = await newHub(t);
  const server = await t.step("startGreenEchoServer(hub)", () => lesson.startGreenEchoServer(hub));
  t.defer(() => server.close());
  const running = hub.run();
  running.catch(() => {});
  const a = await t.connect(server.addr, "client A");
  const b = await t.connect(server.addr, "client B");
  await a.send("a\n");
  await a.expect("a\n");
  await b.send("b\n");
  await b.expect("b\n");
  const held = server.openFds();
  t.check(held.length === 3, {
    step: "server.openFds() with two clients",
    expected: "3 fds: the listener and both connections",
    actual: `[${held.join(", ")}]`,
  });
  await t.step("server.close()", () => server.close(), { timeoutMs: 3000 });
  const stillOpen = held.filter(isFdOpen);
  t.check(stillOpen.length === 0, {
    step: "each fd the server held, after close()",
    expected: "all closed",
    actual: `[${stillOpen.join(", ")}] still open`,
    note: "kill throws TaskKilled at the coroutine's yield: its finally must close the fd",
  });
  await a.expectEnd({ step: "client A sees the end" });
  await b.expectEnd({ step: "client B sees the end" });
  await t.step("hub.run() returns once every task has ended", () => running, { timeoutMs: 3000 });
}, { skip: ffiSkip });

const CONNECTIONS = 1000;

suite.test(`Hub: ${CONNECTIONS} connections served at once by one thread`, async (t) => {
  const before = getrlimit();
  const { soft } = raiseFileLimit();
  t.defer(() => setrlimit(before));
  // Two descriptors per connection in this process, plus room for everything else.
  const batch = Math.min(CONNECTIONS, Math.floor((soft - 200) / 2));
  if (batch < 50) t.fail({ step: "raise the descriptor limit", actual: `the limit is ${soft}` });
  const { lesson, hub } = await newHub(t);
  const server = await t.step("startGreenEchoServer(hub)", () => lesson.startGreenEchoServer(hub));
  t.defer(() => server.close());
  const running = hub.run();
  running.catch(() => {});
  let echoed = 0;
  for (let first = 0; first < CONNECTIONS; first += batch) {
    const count = Math.min(batch, CONNECTIONS - first);
    const conns: Deno.Conn[] = [];
    t.defer(() => conns.forEach((conn) => conn.close()));
    const work = (async () => {
      for (let i = 0; i < count; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
      }
      await Promise.all(conns.map(async (conn, i) => {
        const message = new TextEncoder().encode(`hello from connection ${first + i}\n`);
        await conn.write(message);
        const buffer = new Uint8Array(message.length);
        for (let got = 0; got < message.length;) {
          const n = await conn.read(buffer.subarray(got));
          if (n === null) throw new Error(`connection ${first + i} ended after ${got} bytes`);
          got += n;
        }
        if (new TextDecoder().decode(buffer) !== new TextDecoder().decode(message)) {
          throw new Error(
            `connection ${first + i} got ${JSON.stringify(new TextDecoder().decode(buffer))}`,
          );
        }
        echoed++;
      }));
    })();
    await withNote(
      t.step(
        `connections ${first + 1}–${first + count}: connect, send a line, read its echo`,
        () => work,
        { timeoutMs: 20_000 },
      ),
      `${echoed} connection(s) had their echo; your server had accepted ${server.accepted}`,
    );
    // Every connection of the batch is still open here, so their coroutines are all alive.
    for (const conn of conns.splice(0)) conn.close();
  }
  t.expectEqual(echoed, CONNECTIONS, "connections that got their echo");
  t.check(server.peakLive >= batch, {
    step: "server.peakLive",
    expected: `at least ${batch}: every connection of a batch was open at the same time`,
    actual: String(server.peakLive),
    note: batch < CONNECTIONS
      ? `the descriptor limit (${soft}) allowed batches of ${batch} connections`
      : "one coroutine per connection, all alive together",
  });
  await t.step("server.close()", () => server.close(), { timeoutMs: 5000 });
  await t.step("hub.run() returns", () => running, { timeoutMs: 5000 });
}, { skip: ffiSkip, timeoutMs: 60_000 });
