/**
 * Grading suite of lesson 11 — select, poll and epoll.
 * Run it with `deno task lesson 11`.
 *
 * The servers under test run their loop on the same thread as the grader's
 * clients (Deno sockets in this process): poll and epoll wait on FFI worker
 * threads, select looks with a zero timeout between awaits. Every server's
 * close() must end its loop (a worker-thread wait is woken through the
 * server's pipe), so no wait outlives a check.
 *
 * The FD_SETSIZE checks fill every free descriptor number below 1024 with
 * duplicates of one pipe (F_DUPFD), after raising the soft RLIMIT_NOFILE to
 * the hard limit; both are undone when the check ends.
 */
import {
  describeError,
  GradeFailure,
  type Grader,
  isGradeFailure,
  lessonSuite,
  withNote,
} from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/11-select-poll-epoll/multiplex.ts";
import {
  F_DUPFD_CLOEXEC,
  FD_SETSIZE,
  ffiAvailable,
  getrlimit,
  isFdOpen,
  pipe,
  raiseFileLimit,
  read,
  setrlimit,
  socketPair,
  sys,
  write,
} from "workbook/libc";

const suite = lessonSuite("11");
const load = (t: Grader) => t.load<typeof Lesson>();

type Kind = Lesson.EchoKind;
type EchoServer = Lesson.EchoServer;
const KINDS: Kind[] = ["select", "poll", "epoll", "epoll-et"];

const encoder = new TextEncoder();

/** The call that starts a server of `kind`, as the learner reads it in a step name. */
function startCall(kind: Kind, options: Lesson.EchoOptions): string {
  const shown = JSON.stringify(options) === "{}" ? "" : JSON.stringify(options);
  switch (kind) {
    case "select":
      return `startSelectEchoServer(${shown})`;
    case "poll":
      return `startPollEchoServer(${shown})`;
    case "epoll":
      return `startEpollEchoServer(${shown})`;
    case "epoll-et":
      return `startEpollEchoServer(${JSON.stringify({ ...options, edgeTriggered: true })})`;
  }
}

/** Starts the learner's server of `kind`; it is closed after the check whatever happens. */
async function start(t: Grader, kind: Kind, options: Lesson.EchoOptions = {}) {
  const lesson = await load(t);
  const server = await t.step(startCall(kind, options), () => {
    switch (kind) {
      case "select":
        return lesson.startSelectEchoServer(options);
      case "poll":
        return lesson.startPollEchoServer(options);
      case "epoll":
        return lesson.startEpollEchoServer(options);
      case "epoll-et":
        return lesson.startEpollEchoServer({ ...options, edgeTriggered: true });
    }
  });
  t.defer(() => server.close());
  return server;
}

/** Advice for the ways a server loop dies. */
function adviceFor(error: unknown): string | undefined {
  const text = String(error instanceof Error ? error.message : error);
  if (/FD_SETSIZE/.test(text)) {
    return "a descriptor >= 1024 reached select(): check every accepted fd against FD_SETSIZE " +
      "and close (refuse) it before it goes into a set";
  }
  if (/EBADF/.test(text)) {
    return "a closed descriptor was still in what your loop watches: when you close a client, " +
      "also forget it (state.closeClient(fd) does both), and with epoll EPOLL_CTL_DEL it first";
  }
  if (/POLLNVAL|not open/.test(text)) {
    return "a closed descriptor is still in your pollfd list: close AND forget (state.closeClient)";
  }
  return undefined;
}

/**
 * Runs `work` while watching the server's loop: if the loop crashes or ends
 * before close(), that is the failure to report, not a client timing out.
 */
async function serving<T>(t: Grader, server: EchoServer, work: () => Promise<T>): Promise<T> {
  const stopped = server.finished.then(
    () => {
      throw new GradeFailure({
        kind: "mismatch",
        step: `your ${server.kind} server's loop`,
        expected: "the loop to keep serving until close() is called",
        actual: "the loop ended by itself",
        note: "loop while !state.closing; a wait that returns nothing is no reason to stop",
      }).attach(t.transcript, t.doc);
    },
    (error) => {
      throw new GradeFailure({
        kind: "threw",
        step: `your ${server.kind} server's loop`,
        expected: "the loop to keep serving until close() is called",
        actual: `it stopped with ${describeError(error)}`,
        note: adviceFor(error),
      }).attach(t.transcript, t.doc);
    },
  );
  stopped.catch(() => {});
  return await Promise.race([work(), stopped]);
}

/**
 * `length` bytes of numbered text lines (`<tag> 000042 ……\n`): readable in a
 * transcript, and a lost or reordered piece shows in the line numbers.
 */
function pattern(length: number, tag: string): Uint8Array {
  const out = new Uint8Array(length);
  const filler = "abcdefghijklmnopqrstuvwxyz0123456789";
  let at = 0;
  for (let n = 0; at < length; n++) {
    const line = encoder.encode(`${tag} ${String(n).padStart(6, "0")} ${filler}\n`);
    out.set(line.subarray(0, length - at), at);
    at += line.length;
  }
  return out;
}

function list(fds: readonly number[]): string {
  return `[${fds.join(", ")}]`;
}

// ---------------------------------------------------------------------------
// The four servers: the same checks for each
// ---------------------------------------------------------------------------

const ET_NOTE = "edge-triggered: an event comes once per change, not while data is left. Read " +
  'until EAGAIN (readOnce says "again") after every EPOLLIN edge — serveEdge, not serveReady';

for (const kind of KINDS) {
  suite.test(
    `${kind}: echoes one client (bytes 1 at a time, then 5 KiB in one write) and closes after its EOF`,
    async (t) => {
      const server = await start(t, kind);
      await serving(t, server, async () => {
        const client = await t.connect(server.addr, "client");
        const line = "hello, multiplexer\n";
        await client.send(line, { split: "bytes" });
        await client.expect(line, { step: "the echo of a line sent 1 byte at a time" });
        const block = pattern(5 * 1024, "block");
        await client.send(block);
        await client.expect(block, { step: "the echo of 5 KiB sent in one write" });
        await client.closeWrite();
        await withNote(
          client.expectEnd({ cleanly: true, step: "your server closes after the client's EOF" }),
          "read() returning 0 means EOF: once everything is echoed (client.done), close the fd",
        );
      });
      t.expectEqual(
        server.clientFds(),
        [],
        "server.clientFds() after the only client left",
        "a client whose connection you closed must also leave state.clients",
      );
    },
    { requires: ["ffi"] },
  );

  suite.test(`${kind}: serves 20 clients at once, each getting its own bytes back`, async (t) => {
    const server = await start(t, kind);
    await serving(t, server, async () => {
      const clients = await Promise.all(
        Array.from({ length: 20 }, (_, i) => t.connect(server.addr, `client ${i + 1}`)),
      );
      await Promise.all(clients.map(async (client, i) => {
        const payload = pattern(1500 + 97 * i, `client ${i + 1}`);
        await client.send(payload, { split: { seed: i + 1, maxChunk: 400 } });
        await withNote(
          client.expect(payload, {
            step: `the echo of ${client.label}'s ${payload.length} bytes`,
            timeoutMs: 5000,
          }),
          kind === "epoll-et"
            ? "edge-triggered accept: one EPOLLIN edge on the listener can stand for many " +
              "queued connections; accept until EAGAIN (acceptOne() returns null)"
            : "every ready client must be served in the same round; one that is never watched " +
              "again waits forever",
        );
        await client.closeWrite();
        await client.expectEnd({ step: `your server closes ${client.label} after its EOF` });
      }));
    });
    await t.eventually(
      "server.clientFds() once all 20 clients have left",
      () => server.clientFds().length === 0,
      {
        expected: "no client fds left (each closed and forgotten after its EOF)",
        actual: () => `still ${list(server.clientFds())}`,
      },
    );
    t.check(server.accepted >= 20, {
      step: "server.accepted",
      expected: "at least 20",
      actual: String(server.accepted),
    });
  }, { requires: ["ffi"], timeoutMs: 15_000 });

  suite.test(`${kind}: survives clients that reset, closes and forgets their fds`, async (t) => {
    const server = await start(t, kind);
    await serving(t, server, async () => {
      const steady = await t.connect(server.addr, "steady client");
      await steady.send("before the resets\n");
      await steady.expect("before the resets\n");
      await t.reset(server.addr, "reset at once");
      await t.reset(server.addr, "reset after 32 KiB", pattern(32 * 1024, "doomed"));
      await t.eventually(
        "your server notices both resets and closes their connections",
        () => server.accepted >= 3 && server.clientFds().length === 1,
        {
          expected: "3 accepted and only the steady client's fd left",
          actual: () =>
            `accepted ${server.accepted}, live client fds ${list(server.clientFds())} ` +
            `(the steady client is 1 of them)`,
          note: 'a reset client reads as "reset" (ECONNRESET) or its send fails (EPIPE): drop it',
        },
      );
      await steady.send("after the resets\n", { split: [3, 5] });
      await steady.expect("after the resets\n", { step: "the steady client is still served" });
      const open = new Set(server.openFds());
      const stale = server.watchedFds().filter((fd) => !open.has(fd));
      t.check(stale.length === 0, {
        step: "server.watchedFds() against server.openFds()",
        expected: "every watched fd to be open",
        actual: `your wait still watches ${list(stale)}, which your server closed`,
        note: "unregister a client when you close it: drop it from the fd sets / pollfd list / " +
          "epoll interest list (EPOLL_CTL_DEL before close)",
      });
    });
  }, { requires: ["ffi"] });

  suite.test(`${kind}: a 64 KiB burst read 1 KiB at a time comes back whole`, async (t) => {
    const server = await start(t, kind, { readBufferBytes: 1024 });
    await serving(t, server, async () => {
      const client = await t.connect(server.addr, "client");
      const burst = pattern(64 * 1024, "burst");
      await client.send(burst, { step: "send 64 KiB in one write" });
      await withNote(
        client.expect(burst, { step: "the echo of the whole 64 KiB burst", timeoutMs: 5000 }),
        kind === "epoll-et"
          ? ET_NOTE
          : "with 1 KiB reads, the rest of the burst waits in the kernel: the fd stays readable " +
            "and your loop must keep serving it",
      );
    });
  }, { requires: ["ffi"], timeoutMs: 10_000 });

  suite.test(`${kind}: a client that reads late still gets all 1 MiB back, in order`, async (t) => {
    // A small send buffer (16 KiB, doubled by the kernel) makes send() say EAGAIN early.
    const server = await start(t, kind, { sendBufferBytes: 16 * 1024 });
    await serving(t, server, async () => {
      const client = await t.connect(server.addr, "slow reader", { read: false });
      const payload = pattern(1024 * 1024, "late");
      const sending = client.send(payload, { step: "send 1 MiB without reading the echo" });
      sending.catch(() => {}); // awaited below
      // Wait (bounded) until your server holds so much unsent echo that it stops reading
      // (HIGH_WATER_BYTES): from then on only write readiness can move this client on.
      const { HIGH_WATER_BYTES } = await load(t);
      const deadline = performance.now() + 3000;
      while (server.pendingOutputBytes() < HIGH_WATER_BYTES && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      client.startReading();
      await withNote(
        client.expect(payload, {
          step: "the echo of all 1 MiB, once the client reads",
          timeoutMs: 10_000,
        }),
        "when send() takes only part (or says EAGAIN), keep the rest queued and ask to hear " +
          "when the fd is writable again (the write set, POLLOUT, EPOLLOUT); then flush",
      );
      await sending;
    });
  }, { requires: ["ffi"], timeoutMs: 20_000 });

  suite.test(`${kind}: close() closes every descriptor, and its clients see EOF`, async (t) => {
    const server = await start(t, kind);
    const [talker, quiet] = await serving(t, server, async () => {
      const talker = await t.connect(server.addr, "talking client");
      const quiet = await t.connect(server.addr, "quiet client");
      await talker.send("ping\n");
      await talker.expect("ping\n");
      await t.eventually(
        "your server has accepted both clients",
        () => server.clientFds().length === 2,
        {
          expected: "2 live client fds",
          actual: () => `live client fds ${list(server.clientFds())}`,
        },
      );
      return [talker, quiet];
    });
    const held = server.openFds();
    t.check(held.length >= 4, {
      step: "server.openFds() with two clients connected",
      expected: "the listener, the wake-up pipe's two ends and both clients (and an epoll fd)",
      actual: list(held),
    });
    await t.step("server.close()", () => server.close(), { timeoutMs: 3000 });
    const stillOpen = held.filter(isFdOpen);
    t.check(stillOpen.length === 0, {
      step: "look at each fd the server held, after close()",
      expected: `all of ${list(held)} closed`,
      actual: `${list(stillOpen)} still open`,
      note: "close() must end the loop and then close every descriptor (state.server does it " +
        "for what is in state): put the epoll fd in state.extraFds",
    });
    t.expectEqual(server.openFds(), [], "server.openFds() after close()");
    await talker.expectEnd({ cleanly: true, step: "the talking client sees EOF" });
    await quiet.expectEnd({ cleanly: true, step: "the quiet client sees EOF" });
  }, { requires: ["ffi"] });
}

// ---------------------------------------------------------------------------
// select's wall: FD_SETSIZE
// ---------------------------------------------------------------------------

// Only asked where libc loads; elsewhere `requires: ["ffi"]` skips these checks.
const wallSkip = !ffiAvailable().ok ? undefined : (() => {
  const { hard } = getrlimit();
  return hard >= FD_SETSIZE + 128
    ? undefined
    : `the descriptor limit (hard RLIMIT_NOFILE ${hard}) is too low to reach fd ${FD_SETSIZE}`;
})();

/** Raises the soft descriptor limit for this check; restores it after. */
function raiseLimit(t: Grader): void {
  const before = getrlimit();
  raiseFileLimit();
  t.defer(() => setrlimit(before));
}

/**
 * Takes every free descriptor number below `limit` (duplicates of one pipe
 * end), so the next fd anyone gets is >= `limit`. Returns them; they are
 * closed after the check.
 */
function fillBelow(t: Grader, limit: number): number[] {
  const [readEnd, writeEnd] = pipe();
  const fillers = [readEnd, writeEnd];
  t.defer(() => fillers.forEach((fd) => sys.close(fd)));
  for (;;) {
    const { value: fd, errno } = sys.fcntl(readEnd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw new Error(`the grader could not fill the fd table: errno ${errno}`);
    if (fd >= limit) {
      sys.close(fd);
      return fillers;
    }
    fillers.push(fd);
  }
}

/** The lowest free descriptor number right now. */
function lowestFreeFd(): number {
  const [readEnd, writeEnd] = pipe();
  sys.close(readEnd);
  sys.close(writeEnd);
  return readEnd;
}

suite.test(
  "select: refuses a connection whose fd is past FD_SETSIZE, and keeps serving",
  async (t) => {
    raiseLimit(t);
    const server = await start(t, "select");
    await serving(t, server, async () => {
      const early = await t.connect(server.addr, "early client");
      await early.send("below the wall\n");
      await early.expect("below the wall\n");

      const fillers = fillBelow(t, FD_SETSIZE); // from now on every new fd is >= 1024
      const high = await t.connect(server.addr, "client past the wall");
      await withNote(
        high.expectEnd({
          step: "your server closes the connection it got an fd >= 1024 for",
          timeoutMs: 3000,
        }),
        "an fd_set has 1024 bits: check each accepted fd against FD_SETSIZE, close the ones past " +
          "it at once (count them in state.refused) and go on serving the others",
      );
      t.check(server.refused >= 1, {
        step: "server.refused",
        expected: "at least 1 (the connection past the wall)",
        actual: String(server.refused),
      });
      await early.send("still here\n");
      await early.expect("still here\n", { step: "the early client is still served" });

      for (const fd of fillers.splice(-8)) sys.close(fd); // room below the wall again
      const late = await t.connect(server.addr, "client below the wall");
      await late.send("back below the wall\n");
      await late.expect("back below the wall\n", {
        step: "a new client whose fd is below 1024 is served",
      });
    });
  },
  { requires: ["ffi"], skip: wallSkip, timeoutMs: 10_000 },
);

suite.test("select: will not start when its own fds would be past FD_SETSIZE", async (t) => {
  raiseLimit(t);
  const { startSelectEchoServer } = await load(t);
  fillBelow(t, FD_SETSIZE);
  const lowest = lowestFreeFd();
  const error = await t.expectThrows(
    "startSelectEchoServer() when every fd below 1024 is taken",
    () => {
      const server = startSelectEchoServer();
      t.defer(() => server.close());
    },
    "an error that names FD_SETSIZE: the listener's fd is past select's reach",
  );
  const message = error instanceof Error ? error.message : String(error);
  t.check(/FD_SETSIZE|1024/.test(message), {
    step: "the error's message",
    expected: "a message that names FD_SETSIZE (or 1024)",
    actual: `${error instanceof Error ? error.name : typeof error}: ${message}`,
  });
  t.expectEqual(
    lowestFreeFd(),
    lowest,
    "the lowest free fd after the failed start",
    "close what you opened (state.releaseAll()) before throwing: the listener and the pipe leak",
  );
}, { requires: ["ffi"], skip: wallSkip });

// ---------------------------------------------------------------------------
// The event loop
// ---------------------------------------------------------------------------

/** A non-blocking socket pair, closed after the check. */
function pair(t: Grader): [number, number] {
  const [left, right] = socketPair({ nonBlocking: true });
  t.defer(() => {
    sys.close(left);
    sys.close(right);
  });
  return [left, right];
}

async function newLoop(t: Grader): Promise<Lesson.EventLoop> {
  const { EventLoop } = await load(t);
  const loop = await t.step("new EventLoop()", () => new EventLoop());
  t.defer(() => loop.close());
  return loop;
}

/** Makes `fd`'s peer readable, so a wait stuck on it returns (clean-up only). */
function poke(t: Grader, peer: number): void {
  t.defer(() => write(peer, new Uint8Array([0])));
}

suite.test("EventLoop: calls back while a descriptor stays ready (level-triggered)", async (t) => {
  const loop = await newLoop(t);
  const [left, right] = pair(t);
  const calls: { fd: number; readable: boolean; writable: boolean }[] = [];
  await t.step(
    "loop.watch(fd, { readable: true }, callback)",
    () => loop.watch(right, { readable: true }, (fd, ready) => calls.push({ fd, ...ready })),
  );
  t.expectEqual(loop.watchedFds(), [right], "loop.watchedFds() after watch()");
  write(left, encoder.encode("abc"));
  const first = await t.step("loop.runOnce(1000) with 3 bytes to read", () => loop.runOnce(1000));
  t.check(first === 1 && calls.length === 1 && calls[0].fd === right && calls[0].readable, {
    step: "the callback after the first round",
    expected: `one call: fd ${right}, readable: true (and runOnce resolving to 1)`,
    actual: `${JSON.stringify(calls)}, runOnce returned ${first}`,
  });
  const again = await t.step(
    "loop.runOnce(0) while the bytes are still unread",
    () => loop.runOnce(0),
  );
  t.expectEqual(
    again,
    1,
    "callbacks run by a second round, data still unread",
    "level-triggered: the fd is reported again as long as it is readable",
  );
  read(right, new Uint8Array(16));
  t.expectEqual(
    await t.step("loop.runOnce(0) after the data was read", () => loop.runOnce(0)),
    0,
    "callbacks run once the fd was drained",
  );
  const writes: boolean[] = [];
  await t.step(
    "loop.watch(same fd, { writable: true }, other callback) replaces the watch",
    () => loop.watch(right, { writable: true }, (_fd, ready) => writes.push(ready.writable)),
  );
  await t.step("loop.runOnce(1000)", () => loop.runOnce(1000));
  t.check(writes.length === 1 && writes[0] && calls.length === 2, {
    step: "which callback ran after the watch was replaced",
    expected: "the new callback once, with writable: true (the old one not at all)",
    actual: `new callback: ${JSON.stringify(writes)}; old callback calls in all: ${calls.length}`,
    note: "watching an fd again must EPOLL_CTL_MOD it and replace the callback",
  });
  t.expectEqual(await t.step("loop.unwatch(fd)", () => loop.unwatch(right)), true, "unwatch(fd)");
  t.expectEqual(
    await t.step("loop.runOnce(0)", () => loop.runOnce(0)),
    0,
    "callbacks after unwatch",
  );
  t.expectEqual(loop.unwatch(right), false, "unwatch(fd) a second time");
  await t.expectThrows(
    "loop.watch(fd, {}, callback): an interest that asks for nothing",
    () => loop.watch(right, {}, () => {}),
    "a RangeError",
  );
}, { requires: ["ffi"] });

suite.test("EventLoop: an fd unwatched earlier in the same round gets no callback", async (t) => {
  const loop = await newLoop(t);
  const [a1, a2] = pair(t);
  const [b1, b2] = pair(t);
  const called: number[] = [];
  await t.step("watch two fds, each callback unwatching the other", () => {
    loop.watch(a2, { readable: true }, () => {
      called.push(a2);
      loop.unwatch(b2);
    });
    loop.watch(b2, { readable: true }, () => {
      called.push(b2);
      loop.unwatch(a2);
    });
  });
  write(a1, new Uint8Array([1]));
  write(b1, new Uint8Array([1]));
  for (let round = 0; round < 5 && called.length === 0; round++) {
    await t.step("loop.runOnce(1000) with both fds readable", () => loop.runOnce(1000));
  }
  t.check(called.length === 1, {
    step: "callbacks of the round where both fds were ready",
    expected: "exactly one: the first callback unwatched the other fd",
    actual: `${called.length} (fds ${list(called)})`,
    note: "one epoll_wait returns both events; before each callback, look the fd up again — " +
      "an earlier callback may have unwatched (and closed, and reused) it",
  });
}, { requires: ["ffi"] });

suite.test(
  "EventLoop: timers fire in due order, ties in the order set; cleared never",
  async (t) => {
    const loop = await newLoop(t);
    const order: string[] = [];
    // 50 ms margins: only a stall that long between two statements could swap two timers.
    await t.step("set timers of 100, 50, 75 (then cleared), 50 and 0 ms", () => {
      loop.setTimer(100, () => order.push("100 ms"));
      loop.setTimer(50, () => order.push("50 ms, set first"));
      const cleared = loop.setTimer(75, () => order.push("75 ms (cleared!)"));
      loop.setTimer(50, () => order.push("50 ms, set second"));
      loop.setTimer(0, () => order.push("0 ms"));
      if (!loop.clearTimer(cleared)) {
        throw new Error("clearTimer(id of a pending timer) said false");
      }
    });
    t.expectEqual(loop.pendingTimers, 4, "loop.pendingTimers after setting 5 and clearing 1");
    await t.step("loop.run() (returns once no timer is left)", () => loop.run());
    t.expectEqual(
      order,
      ["0 ms", "50 ms, set first", "50 ms, set second", "100 ms"],
      "the order the timers fired in",
      "keep #timers sorted by due time; a new timer goes after those due at the same time",
    );
  },
  { requires: ["ffi"] },
);

suite.test("EventLoop: a timer set while run() waits wakes it; stop() ends run()", async (t) => {
  const loop = await newLoop(t);
  const [left, right] = pair(t);
  poke(t, left); // clean-up: a wait still stuck on `right` returns
  await t.step("watch an idle fd", () => loop.watch(right, { readable: true }, () => {}));
  // run() waits at once, forever: nothing is ready and no timer is set.
  const running = loop.run();
  running.catch(() => {}); // awaited below
  await t.step(
    "loop.setTimer(1, callback) while the loop waits; the callback calls loop.stop()",
    () =>
      new Promise<void>((resolve) => {
        loop.setTimer(1, () => {
          resolve();
          loop.stop();
        });
      }),
  ).catch((error) => {
    if (isGradeFailure(error) && error.details.kind === "timeout") {
      error.details.note = "the wait in flight computed its timeout before this timer existed: " +
        "setTimer must wake it (write a byte into the wake-up pipe)";
      error.message = error.render();
    }
    throw error;
  });
  await t.step("run() returns after stop()", () => running, { timeoutMs: 1000 });
}, { requires: ["ffi"], timeoutMs: 8000 });

suite.test(
  "EventLoop: close() waits for the wait in flight, then closes its own fds",
  async (t) => {
    const loop = await newLoop(t);
    const [left, right] = pair(t);
    poke(t, left);
    const own = loop.ownFds();
    t.check(own.length === 3 && own.every(isFdOpen), {
      step: "loop.ownFds() of a new loop",
      expected: "three open fds: the epoll instance and the wake-up pipe's two ends",
      actual: `${list(own)}, open: ${list(own.filter(isFdOpen))}`,
    });
    await t.step("watch an idle fd", () => loop.watch(right, { readable: true }, () => {}));
    const running = loop.run(); // waits at once: nothing is ready
    running.catch(() => {}); // awaited below
    await t.step("loop.close() while run() waits", () => loop.close());
    await t.step("run() returns after close()", () => running, { timeoutMs: 1000 });
    const stillOpen = own.filter(isFdOpen);
    t.check(stillOpen.length === 0, {
      step: "the loop's own fds after close()",
      expected: "all closed",
      actual: `${list(stillOpen)} still open`,
    });
    t.check(isFdOpen(right), {
      step: "the watched fd after close()",
      expected: "still open: watched fds belong to the caller",
      actual: "closed by the loop",
    });
    t.expectEqual(loop.ownFds(), [], "loop.ownFds() after close()");
  },
  { requires: ["ffi"] },
);

suite.test("EventLoop: a throwing callback rejects run(); the loop still closes", async (t) => {
  const loop = await newLoop(t);
  const [, right] = pair(t);
  await t.step(
    "watch a writable fd with a callback that throws",
    () =>
      loop.watch(right, { writable: true }, () => {
        throw new Error("callback failed on purpose");
      }),
  );
  const error = await t.expectThrows(
    "loop.run()",
    () => loop.run(),
    "run() to reject with the callback's error",
  );
  t.check(error instanceof Error && error.message === "callback failed on purpose", {
    step: "the error run() rejected with",
    expected: "the callback's own error",
    actual: describeError(error),
  });
  await t.step("loop.close() after the failed run", () => loop.close());
}, { requires: ["ffi"] });
