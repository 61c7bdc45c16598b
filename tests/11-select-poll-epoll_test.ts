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
import { setImmediate } from "node:timers";
import {
  type BackgroundOutcome,
  captureLogs,
  describeError,
  expectedBackoff,
  GradeFailure,
  type Grader,
  isGradeFailure,
  lessonSuite,
  nextTurn,
  numberedLines,
  prefilledClient,
  STEP_MS,
  waitUntil,
} from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/11-select-poll-epoll/multiplex.ts";
import {
  connectTcp,
  EMFILE,
  F_DUPFD_CLOEXEC,
  FD_SETSIZE,
  ffiAvailable,
  getrlimit,
  isFdOpen,
  pipe,
  poll,
  POLLIN,
  raiseFileLimit,
  read,
  setrlimit,
  socketPair,
  sys,
  write,
} from "workbook/libc";

const suite = lessonSuite("11");
const load = (t: Grader) => t.load<typeof Lesson>();
/** A step that moves tens or hundreds of KiB through the learner's loop: this process's own work. */
const VOLUME_MS = 2 * STEP_MS;

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
  t.defer(() => closeServer(server));
  // The loop is the check's background work: a crash or an early end fails the step being
  // awaited at once, and clean-up waits for the loop to end, so nothing it runs outlives the check.
  t.background(`your ${kind} server's loop`, Promise.resolve(server.finished), {
    onEnd: (outcome) => loopEnded(t, server, outcome),
  });
  return server;
}

/** Servers the grader has asked to close: from then on their loop may end. */
const closing = new WeakSet<EchoServer>();

/** Closes the learner's server (the loop may end now). */
function closeServer(server: EchoServer): Promise<void> {
  closing.add(server);
  return server.close();
}

/** Why the loop's ending fails the check, or undefined when the grader had closed it. */
function loopEnded(t: Grader, server: EchoServer, outcome: BackgroundOutcome): unknown {
  const step = `your ${server.kind} server's loop`;
  if ("error" in outcome) {
    return new GradeFailure({
      kind: "threw",
      step,
      expected: closing.has(server)
        ? "close() to end the loop cleanly"
        : "the loop to keep serving until close() is called",
      actual: `it stopped with ${describeError(outcome.error)}`,
      note: adviceFor(outcome.error),
    }).attach(t.transcript, t.doc);
  }
  if (closing.has(server)) return undefined;
  return new GradeFailure({
    kind: "mismatch",
    step,
    expected: "the loop to keep serving until close() is called",
    actual: "the loop ended by itself",
    note: "loop while !state.closing; a wait that returns nothing is no reason to stop",
  }).attach(t.transcript, t.doc);
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
  if (/EMFILE|ENFILE|Too many open files/.test(text)) return EMFILE_NOTE;
  if (/POLLNVAL|not open/.test(text)) {
    return "a closed descriptor is still in your pollfd list: close AND forget (state.closeClient)";
  }
  return undefined;
}

function list(fds: readonly number[]): string {
  return `[${fds.join(", ")}]`;
}

// ---------------------------------------------------------------------------
// The building blocks: serveReady and serveEdge, one turn at a time
// ---------------------------------------------------------------------------

/** Writes filler into non-blocking `fd` until the kernel says EAGAIN; returns how much. */
function fillUntilFull(fd: number): number {
  const junk = new Uint8Array(64 * 1024).fill(0x2e);
  let total = 0;
  for (let i = 0; i < 4096; i++) {
    const n = write(fd, junk);
    if (n === null) return total;
    total += n;
  }
  throw new Error("the grader could not fill the socket");
}

/** Reads non-blocking `fd` until EAGAIN or EOF; returns how many bytes it took. */
function drainAll(fd: number): number {
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  for (let i = 0; i < 4096; i++) {
    const n = read(fd, buffer);
    if (n === null || n === 0) return total;
    total += n;
  }
  throw new Error("the grader could not drain the socket");
}

suite.test(
  "serveReady: one read per turn, echoed at once; a client whose echo is queued past its EOF is kept until done",
  async (t) => {
    const { serveReady, EchoClient } = await load(t);
    const [server, peer] = pair(t);
    const client = new EchoClient(server);
    const buffer = new Uint8Array(1024);
    write(peer, numberedLines(4096, "ready"));
    const kept = await t.step(
      "serveReady(client, a 1 KiB buffer, readable, not writable) with 4 KiB waiting",
      () => serveReady(client, buffer, true, false),
    );
    t.expectEqual(kept, true, "what serveReady returned for a client with more to say");
    t.expectEqual(
      drainAll(peer),
      1024,
      "bytes echoed to the peer after that one turn",
      "level-triggered: read ONCE per turn (the wait reports the fd again while data is left, " +
        "which is fair to the other clients), then flush what you read at once",
    );
    for (let turn = 0; turn < 3; turn++) serveReady(client, buffer, true, false);
    drainAll(peer);

    // The way back is full: the echo of what comes next stays queued in the server.
    fillUntilFull(server);
    write(peer, encoder.encode("tail\n"));
    sys.shutdown(peer, 1); // SHUT_WR: EOF after "tail\n"
    await t.step(
      'serveReady(…, readable, not writable): reads "tail\\n"; the echo cannot be sent yet',
      () => serveReady(client, buffer, true, false),
    );
    const afterEof = await t.step(
      "serveReady(…, readable, not writable): reads the EOF while the echo is still queued",
      () => serveReady(client, buffer, true, false),
    );
    t.check(afterEof === true && client.eof && client.pendingBytes === 5, {
      step: "what serveReady returned after the EOF, with 5 bytes of echo still queued",
      expected: "true: the client is kept until its echo is sent (client.done)",
      actual: `${afterEof} (client.eof ${client.eof}, ${client.pendingBytes} bytes pending)`,
      note: "EOF means the client will send nothing more, not that you are done: drop it only " +
        "when client.done (EOF AND nothing pending); the queued echo would be lost",
    });
    drainAll(peer); // the client reads: room again
    const done = await t.step(
      "serveReady(…, not readable, writable) once the peer made room",
      () => serveReady(client, buffer, false, true),
    );
    t.expectEqual(done, false, "what serveReady returned once the echo was sent after the EOF");
  },
  { requires: ["ffi"] },
);

suite.test(
  "serveEdge: reads until EAGAIN, keeps echoing, resumes reading below HIGH_WATER_BYTES, drops a client that is gone",
  async (t) => {
    const { serveEdge, EchoClient, HIGH_WATER_BYTES } = await load(t);
    const [server, peer] = pair(t);
    const client = new EchoClient(server);
    const buffer = new Uint8Array(1024);
    write(peer, numberedLines(4096, "edge"));
    await t.step(
      "serveEdge(client, a 1 KiB buffer, readable, writable) with 4 KiB waiting: one edge",
      () => serveEdge(client, buffer, true, true),
    );
    t.expectEqual(
      drainAll(peer),
      4096,
      "bytes echoed after that one edge",
      'edge-triggered: the edge is reported once; read until EAGAIN (readOnce says "again")',
    );
    write(peer, encoder.encode("next\n"));
    await t.step(
      'serveEdge(…, readable, not writable): "next\\n" arrived; nothing blocked the last flush',
      () => serveEdge(client, buffer, true, false),
    );
    t.expectEqual(
      drainAll(peer),
      5,
      "bytes echoed after the second edge",
      'writeReady goes false only when a flush says "blocked"; after a flush that drained the ' +
        "queue the socket is still writable, and no EPOLLOUT edge will come to say so",
    );

    // Backpressure: the peer sends without reading until the server stops at HIGH_WATER_BYTES.
    for (let round = 0; round < 64 && client.wantsRead; round++) {
      fillUntilFull(peer);
      serveEdge(client, buffer, true, false);
    }
    t.check(!client.wantsRead, {
      step: "the peer sends without reading",
      expected: `your server to stop reading at ${HIGH_WATER_BYTES} bytes of queued echo`,
      actual: `${client.pendingBytes} bytes queued and still reading`,
    });
    fillUntilFull(peer); // more data waits in the kernel: no new edge will announce it
    drainAll(peer); // the peer reads its echo: the server's flush can make room now
    await t.step(
      "serveEdge(…, not readable, writable): the peer read its echo (an EPOLLOUT edge)",
      () => serveEdge(client, buffer, false, true),
    );
    t.check(!(client.readReady && client.wantsRead), {
      step: "the client after that EPOLLOUT edge",
      expected: "data left unread only while the queue is still at the high-water mark",
      actual: `readReady true and wantsRead true (${client.pendingBytes} bytes queued): you ` +
        "stopped reading although the flush had made room",
      note: "no EPOLLIN edge will come for data that is already in the kernel: when a flush " +
        "brings the queue below HIGH_WATER_BYTES, go back to reading (loop until neither moves)",
    });

    // A client that is gone: its echo is queued, and the peer closes.
    const [server2, peer2] = pair(t);
    const gone = new EchoClient(server2);
    fillUntilFull(server2);
    write(peer2, encoder.encode("x"));
    serveEdge(gone, buffer, true, false); // reads "x": its echo stays queued
    sys.shutdown(peer2, 2); // SHUT_RDWR: the peer is gone for writing
    const kept = await t.step(
      "serveEdge(…, not readable, writable) after the peer shut down: the flush fails (EPIPE)",
      () => serveEdge(gone, buffer, false, true),
    );
    t.expectEqual(
      kept,
      false,
      "what serveEdge returned when the flush found the client gone",
      'flush() says "reset" when the peer is gone: return false so the server drops it',
    );
  },
  { requires: ["ffi"] },
);

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
      const client = await t.connect(server.addr, "client");
      const line = "hello, multiplexer\n";
      await client.send(line, { split: "bytes" });
      await client.expect(line, { step: "the echo of a line sent 1 byte at a time" });
      t.expectEqual(server.kind, kind, "server.kind", "new EchoState(kind, options) names it");
      const [listenerFd, wakeFd] = server.openFds();
      const wanted = [listenerFd, wakeFd, ...server.clientFds()];
      const watched = server.watchedFds();
      t.check(wanted.every((fd) => watched.includes(fd)), {
        step: "server.watchedFds() while the client is connected and quiet",
        expected: `the listener (${listenerFd}), the wake-up pipe (${wakeFd}) and the client ` +
          `${list(server.clientFds())}: every fd your wait watches`,
        actual: list(watched),
        note: "set state.watched to the fds of each wait, just before the call",
      });
      const block = numberedLines(5 * 1024, "block");
      await client.send(block);
      await client.expect(block, { step: "the echo of 5 KiB sent in one write" });
      await client.closeWrite();
      await client.expectEnd({
        cleanly: true,
        step: "your server closes after the client's EOF",
        note: "read() returning 0 means EOF: once everything is echoed (client.done), close the fd",
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
    const clients = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.connect(server.addr, `client ${i + 1}`)),
    );
    await Promise.all(clients.map(async (client, i) => {
      const payload = numberedLines(1500 + 97 * i, `client ${i + 1}`);
      await client.send(payload, { split: { seed: i + 1, maxChunk: 400 } });
      await client.expect(payload, {
        step: `the echo of ${client.label}'s ${payload.length} bytes`,
        timeoutMs: VOLUME_MS,
        note: kind === "epoll-et"
          ? "edge-triggered accept: one EPOLLIN edge on the listener can stand for many " +
            "queued connections; accept until EAGAIN (acceptOne() returns null)"
          : "every ready client must be served in the same round; one that is never watched " +
            "again waits forever",
      });
      await client.closeWrite();
      await client.expectEnd({ step: `your server closes ${client.label} after its EOF` });
    }));
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
    const steady = await t.connect(server.addr, "steady client");
    await steady.send("before the resets\n");
    await steady.expect("before the resets\n");
    await t.reset(server.addr, "reset at once");
    await t.reset(server.addr, "reset after 32 KiB", numberedLines(32 * 1024, "doomed"));
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
  }, { requires: ["ffi"] });

  suite.test(`${kind}: a 64 KiB burst read 1 KiB at a time comes back whole`, async (t) => {
    const server = await start(t, kind, { readBufferBytes: 1024 });
    const client = await t.connect(server.addr, "client");
    const burst = numberedLines(64 * 1024, "burst");
    await client.send(burst, { step: "send 64 KiB in one write" });
    await client.expect(burst, {
      step: "the echo of the whole 64 KiB burst",
      timeoutMs: VOLUME_MS,
      note: kind === "epoll-et"
        ? ET_NOTE
        : "with 1 KiB reads, the rest of the burst waits in the kernel: the fd stays readable " +
          "and your loop must keep serving it",
    });
  }, { requires: ["ffi"], timeoutMs: 10_000 });

  suite.test(`${kind}: a client that reads late still gets all 1 MiB back, in order`, async (t) => {
    // A small send buffer (16 KiB, doubled by the kernel) makes send() say EAGAIN early.
    const server = await start(t, kind, { sendBufferBytes: 16 * 1024 });
    const client = await t.connect(server.addr, "slow reader", { read: false });
    const payload = numberedLines(1024 * 1024, "late");
    const sending = client.send(payload, { step: "send 1 MiB without reading the echo" });
    sending.catch(() => {}); // awaited below
    // Wait (bounded) until your server holds so much unsent echo that it stops reading
    // (HIGH_WATER_BYTES): from then on only write readiness can move this client on.
    const { HIGH_WATER_BYTES } = await load(t);
    const held = await waitUntil(
      () => server.pendingOutputBytes() >= HIGH_WATER_BYTES || undefined,
      { timeoutMs: VOLUME_MS, everyMs: 5, signal: t.signal },
    );
    if (held.status === "aborted") throw held.reason; // the loop crashed: stop waiting now
    if (server.pendingOutputBytes() >= HIGH_WATER_BYTES) {
      // Held at the high-water mark, nothing can move until the client reads: stay asleep.
      const waits = await quietWaits(t, server);
      const most = idleLimit(kind);
      t.check(waits <= most, {
        step: `your server holds ${server.pendingOutputBytes()} bytes for a client that does not ` +
          `read, while the grader's own 1 ms timer comes round ${IDLE_TURNS} times`,
        expected: `your loop asleep: <= ${most} waits (the client is neither readable for you ` +
          "nor writable)",
        actual: `${waits} waits`,
        note: idleNote(
          kind,
          "a client past HIGH_WATER_BYTES must leave the read set / lose POLLIN / EPOLLIN " +
            "(client.wantsRead is false): its unread bytes keep it readable, and every wait " +
            "would return at once",
        ),
      });
      const { READ_BUFFER_BYTES } = await load(t);
      t.check(server.pendingOutputBytes() <= HIGH_WATER_BYTES + READ_BUFFER_BYTES, {
        step: "the echo your server holds for a client that does not read",
        expected: `at most HIGH_WATER_BYTES + one read (${HIGH_WATER_BYTES + READ_BUFFER_BYTES})`,
        actual: `${server.pendingOutputBytes()} bytes`,
        note: "stop reading from a client whose queue reached HIGH_WATER_BYTES (wantsRead)",
      });
    }
    client.startReading();
    await client.expect(payload, {
      step: "the echo of all 1 MiB, once the client reads",
      timeoutMs: VOLUME_MS,
      note: "when send() takes only part (or says EAGAIN), keep the rest queued and ask to hear " +
        "when the fd is writable again (the write set, POLLOUT, EPOLLOUT); then flush",
    });
    await sending;
    // 1 MiB through the learner's loop takes well under a second; the budget is for a loaded
    // machine, and short of LONG_CHECK_MS so the check keeps its place in the suite.
  }, { requires: ["ffi"], timeoutMs: 15_000 });

  suite.test(`${kind}: close() closes every descriptor, and its clients see EOF`, async (t) => {
    const openBefore = openFdSet();
    const server = await start(t, kind);
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
    const held = server.openFds();
    t.check(held.length >= 4, {
      step: "server.openFds() with two clients connected",
      expected: "the listener, the wake-up pipe's two ends and both clients (and an epoll fd)",
      actual: list(held),
    });
    await t.step("server.close()", () => closeServer(server));
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
    await talker.close();
    await quiet.close();
    const leaked = [...openFdSet()].filter((fd) => !openBefore.has(fd));
    t.check(leaked.length === 0, {
      step: "the descriptors open once the server is closed (and the grader's clients too)",
      expected: "the same as before the server started",
      actual: `${list(leaked)} opened since, and still open`,
      note: "a descriptor your server opened is still open, though server.openFds() did not " +
        "list it: put every fd you create (the epoll instance) in state.extraFds",
    });
  }, { requires: ["ffi"] });
}

/** Turns of the grader's own 1 ms timer (its yardstick for a loop's rounds) an idle check watches. */
const IDLE_TURNS = 12;

/**
 * IDLE_TURNS turns of the grader's own 1 ms timer, fewer if `until()` holds
 * first; stops at once if the check was interrupted (the server's loop crashed).
 */
async function idleTurns(t: Grader, until: () => boolean = () => false): Promise<void> {
  for (let turn = 0; turn < IDLE_TURNS && !until(); turn++) {
    await nextTurn(1);
    t.throwIfInterrupted();
  }
}

/** Advice for a loop that kept waking up: `lead` names the likely cause; select gets its pause. */
function idleNote(kind: Kind, lead: string): string {
  return lead +
    (kind === "select"
      ? ". And when a look finds nothing, pause longer each time (1, 2, 4, 8 ms: " +
        "SELECT_IDLE_MAX_MS), not pause(0)"
      : "");
}

/** The most waits a correct loop makes in IDLE_TURNS turns when nothing happens. */
function idleLimit(kind: Kind): number {
  // select never sleeps in select: it looks, then pauses up to SELECT_IDLE_MAX_MS (8 ms).
  return kind === "select" ? IDLE_TURNS + 6 : 2;
}

/**
 * How many waits the server's loop makes while the grader's own 1 ms timer
 * comes round IDLE_TURNS times (after 3 turns to let the last event pass).
 * Counts, no clock: an idle loop asleep in its wait makes none.
 */
async function quietWaits(t: Grader, server: EchoServer): Promise<number> {
  for (let i = 0; i < 3; i++) await nextTurn(1);
  const before = server.waits;
  await idleTurns(t);
  return server.waits - before;
}

for (const kind of KINDS) {
  suite.test(
    `${kind}: stays idle while its one client is quiet (the grader counts its waits)`,
    async (t) => {
      const server = await start(t, kind);
      const client = await t.connect(server.addr, "quiet client");
      await client.send("hello\n");
      await client.expect("hello\n");
      t.check(server.waits >= 2, {
        step: "server.waits after accepting a client and echoing its line",
        expected: "at least 2 (set state.watched before every wait: each setting counts as one)",
        actual: String(server.waits),
        note: "the grader counts your loop's waits by your settings of state.watched: set it " +
          "every round, just before select / pollAsync / epollWaitAsync",
      });
      const waits = await quietWaits(t, server);
      const most = idleLimit(kind);
      t.check(waits <= most, {
        step: `the quiet client sends nothing while the grader's own 1 ms timer comes round ` +
          `${IDLE_TURNS} times`,
        expected: kind === "select"
          ? `about one look per turn at most, once your pause has grown to its longest: <= ${most}`
          : `your loop asleep in its wait: <= ${most} waits (nothing became ready)`,
        actual: `${waits} waits (state.watched was set ${waits} times)`,
        note: idleNote(
          kind,
          "an idle connection is always writable: ask for write readiness (the write set, " +
            "POLLOUT, EPOLLOUT with level-triggered epoll) only while the client has output " +
            "queued (client.wantsWrite); asked for anyway, every wait returns at once and the " +
            "loop spins",
        ),
      });
      await client.send("still there?\n", { split: "bytes" });
      await client.expect("still there?\n", { step: "the quiet client is served when it speaks" });
      await client.closeWrite();
      await client.expectEnd({ step: "your server closes after the client's EOF" });
    },
    { requires: ["ffi"] },
  );

  suite.test(
    `${kind}: a client that shuts down its side while its echo is still queued gets all of it, then EOF`,
    async (t) => {
      // A small send buffer keeps most of the echo queued in your server.
      const server = await start(t, kind, { sendBufferBytes: 16 * 1024 });
      const client = await t.connect(server.addr, "client", { read: false });
      const payload = numberedLines(240 * 1024, "queued");
      await client.send(payload, { step: "send 240 KiB without reading the echo" });
      await client.closeWrite();
      // Wait (bounded, in turns) until your server has read the EOF: it then either holds the
      // unsent echo steady, or (wrongly) has closed the connection already.
      let last = -1;
      let steady = 0;
      for (let turn = 0; turn < 600 && steady < 5; turn++) {
        await nextTurn(1);
        t.throwIfInterrupted();
        const pending = server.pendingOutputBytes();
        if (server.clientFds().length === 0) break;
        steady = pending > 0 && pending === last ? steady + 1 : 0;
        last = pending;
      }
      client.startReading();
      await client.expect(payload, {
        step: "the echo of all 240 KiB, read only after the client's EOF",
        timeoutMs: VOLUME_MS,
        note: "EOF means the client will send nothing more, not that you are done: keep the " +
          "client until its queued echo is flushed (client.done: eof AND nothing pending), then " +
          "close; the echo moves on only when you ask to hear that the fd is writable again " +
          "(the write set, POLLOUT, EPOLLOUT)",
      });
      await client.expectEnd({ step: "your server closes once the whole echo is sent" });
    },
    { requires: ["ffi"], timeoutMs: 10_000 },
  );
}

suite.test(
  "select: yields to the rest of the program after every round, also while data keeps coming",
  async (t) => {
    const server = await start(t, "select");
    // A raw client of the grader's whose bytes are all in the kernel before your loop even
    // accepts it: from then on every look of yours finds data, round after round.
    const payload = numberedLines(256 * 1024, "stream");
    const { fd: client, sent } = prefilledClient(t, server.addr.port, payload);
    const step = `a client whose ${sent} bytes are all waiting: the grader counts your looks ` +
      "(server.waits) between two turns of its own setImmediate while you read and echo them";
    // The grader's own chain of setImmediate callbacks: one turn per trip round the event loop.
    // A loop that yields with pause(0) (setImmediate too) makes one round per trip.
    const perTurn: number[] = [];
    let lastWaits = server.waits;
    let marking = true;
    const markDone = Promise.withResolvers<void>();
    const mark = () => {
      perTurn.push(server.waits - lastWaits);
      lastWaits = server.waits;
      if (marking) setImmediate(mark);
      else markDone.resolve();
    };
    setImmediate(mark);
    const stopMarking = () => {
      if (!marking) return;
      marking = false;
      return markDone.promise;
    };
    t.defer(stopMarking);
    const received = new Uint8Array(sent);
    let got = 0;
    for (let turn = 0; turn < 1000 && got < sent; turn++) {
      await nextTurn(1);
      t.throwIfInterrupted();
      for (let i = 0; i < 64 && got < sent; i++) {
        const n = sys.read(client, received.subarray(got)).value;
        if (n <= 0) break;
        got += n;
      }
    }
    await stopMarking();
    const most = Math.max(0, ...perTurn);
    const busy = perTurn.filter((looks) => looks > 0);
    t.check(most <= 4, {
      step,
      expected: "at most 4 of your looks between two turns of the grader's setImmediate: every " +
        "round that found work ends with pause(0), which lets timers and the other clients run",
      actual: `${most} looks in one turn (turns with looks: ${busy.slice(0, 40).join(", ")}${
        busy.length > 40 ? ", …" : ""
      })`,
      note: "await pause(0) at the end of EVERY round that found work, not only the growing " +
        "pause after an idle look: a client that keeps sending would otherwise hold the whole " +
        "program (the grader's clients share this thread) for as long as it likes",
    });
    t.check(got === sent && received.every((byte, i) => byte === payload[i]), {
      step: "the echo of the stream, read by the grader in its turns",
      expected: `the ${sent} bytes sent, in order`,
      actual: `${got} bytes came back${got === sent ? ", not the bytes sent" : ""}`,
    });
  },
  { requires: ["ffi"], timeoutMs: 10_000 },
);

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

/** The descriptors open right now, among 0 … `upTo` (fcntl F_GETFD on each number). */
function openFdSet(upTo = 2048): Set<number> {
  const open = new Set<number>();
  for (let fd = 0; fd <= upTo; fd++) if (isFdOpen(fd)) open.add(fd);
  return open;
}

/** How many more descriptors the soft limit allows (duplicates of `source`, counted, closed). */
function freeCount(source: number): number {
  const taken: number[] = [];
  for (let i = 0; i < 4096; i++) {
    const { value: fd } = sys.fcntl(source, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) break;
    taken.push(fd);
  }
  taken.forEach((fd) => sys.close(fd));
  return taken.length;
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
    const early = await t.connect(server.addr, "early client");
    await early.send("below the wall\n");
    await early.expect("below the wall\n");

    const fillers = fillBelow(t, FD_SETSIZE); // from now on every new fd is >= 1024
    const high = await t.connect(server.addr, "client past the wall");
    await high.expectEnd({
      step: "your server closes the connection it got an fd >= 1024 for",
      note: "an fd_set has 1024 bits: check each accepted fd against FD_SETSIZE, close the ones " +
        "past it at once (count them in state.refused) and go on serving the others",
    });
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
  },
  { requires: ["ffi"], skip: wallSkip, timeoutMs: 10_000 },
);

suite.test(
  "select: an accepted fd of exactly FD_SETSIZE (1024) is refused",
  async (t) => {
    raiseLimit(t);
    const server = await start(t, "select");
    const fillers = fillBelow(t, FD_SETSIZE + 1); // 0 … 1024 taken
    const client = connectTcp("127.0.0.1", server.addr.port, { nonBlocking: true });
    t.defer(() => sys.close(client));
    // Free 1024 alone: the connection waiting in the backlog gets exactly that number.
    const at = fillers.indexOf(FD_SETSIZE);
    if (at >= 0) sys.close(fillers.splice(at, 1)[0]);
    t.transcript.record("grader", "note", {
      detail: `a client connected while every fd up to ${FD_SETSIZE} was taken; then fd ` +
        `${FD_SETSIZE} was freed for your accept`,
    });
    let ended: number | null = null;
    for (let turn = 0; turn < 2000 && ended === null; turn++) {
      await nextTurn(1);
      t.throwIfInterrupted(); // your loop crashed (select() refuses fd 1024)
      if (poll([{ fd: client, events: POLLIN }], 0)[0] !== 0) {
        try {
          ended = read(client, new Uint8Array(16)) ?? null;
        } catch {
          ended = 0; // reset: refused as well
        }
      }
    }
    t.check(ended === 0 && server.refused === 1, {
      step: `your server accepts the waiting connection on fd ${FD_SETSIZE}`,
      expected: `refused: closed at once (fd ${FD_SETSIZE} is one past the last bit of an ` +
        "fd_set), and state.refused counted 1",
      actual: `the client ${
        ended === 0 ? "saw the connection end" : "saw nothing end"
      }; server.refused ${server.refused}`,
      note: "the test is fd >= FD_SETSIZE: fds 0 … 1023 fit an fd_set, 1024 does not",
    });
  },
  { requires: ["ffi"], skip: wallSkip, timeoutMs: 10_000 },
);

suite.test("select: will not start when its own fds would be past FD_SETSIZE", async (t) => {
  raiseLimit(t);
  const { startSelectEchoServer } = await load(t);
  const fillers = fillBelow(t, FD_SETSIZE);
  const lowest = lowestFreeFd();
  const error = await t.expectError(
    "startSelectEchoServer() when every fd below 1024 is taken",
    () => {
      const server = startSelectEchoServer();
      t.defer(() => server.close());
    },
    { what: "an error that names FD_SETSIZE: the listener's fd is past select's reach" },
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

  // The boundary: one free fd below the wall. The listener fits; the pipe's read end gets 1024.
  const last = Math.max(...fillers.filter((fd) => fd < FD_SETSIZE));
  fillers.splice(fillers.indexOf(last), 1);
  sys.close(last);
  await t.expectError(
    `startSelectEchoServer() when only fd ${last} is free below 1024: the listener gets it, ` +
      `the wake-up pipe's read end gets ${FD_SETSIZE}`,
    () => {
      const server = startSelectEchoServer();
      t.defer(() => server.close());
    },
    { what: `an FdSetsizeError: fd ${FD_SETSIZE} is past select's reach too (fds 0 … 1023 only)` },
  );
  t.expectEqual(lowestFreeFd(), last, "the lowest free fd after that failed start");
}, { requires: ["ffi"], skip: wallSkip });

/** Takes every descriptor the soft limit still allows; they are closed after the check. */
function fillAll(t: Grader): number[] {
  const [readEnd, writeEnd] = pipe();
  const fillers = [readEnd, writeEnd];
  t.defer(() => fillers.forEach((fd) => sys.close(fd)));
  for (let i = 0; i < 4096; i++) {
    const { value: fd, errno } = sys.fcntl(readEnd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      if (errno === EMFILE) return fillers;
      throw new Error(`the grader could not fill the fd table: errno ${errno}`);
    }
    fillers.push(fd);
  }
  throw new Error("the grader could not reach the descriptor limit");
}

suite.test(
  "epoll server and EventLoop: out of descriptors while starting, they throw and leave nothing open",
  async (t) => {
    const { startEpollEchoServer, EventLoop } = await load(t);
    const before = getrlimit();
    t.defer(() => setrlimit(before));
    setrlimit({ soft: Math.min(lowestFreeFd() + 64, before.hard), hard: before.hard });
    const fillers = fillAll(t);
    const free = (n: number) => {
      for (const fd of fillers.splice(-n)) sys.close(fd);
    };

    free(3); // room for the listener and the wake-up pipe, not for the epoll instance
    const room = freeCount(fillers[0]);
    await t.expectError(
      "startEpollEchoServer() with 3 descriptors left: epoll_create fails (EMFILE)",
      () => {
        const server = startEpollEchoServer();
        t.defer(() => server.close());
      },
      { what: "an error (EMFILE from epoll_create), after closing the listener and the pipe" },
    );
    t.expectEqual(
      freeCount(fillers[0]),
      room,
      "how many descriptors are left after that failed start",
      "when a call fails while the server starts, state.releaseAll() and rethrow: the " +
        "listener and the pipe must not stay open",
    );

    for (const left of [2, 1]) {
      const taken = room - left;
      const held: number[] = [];
      for (let i = 0; i < taken; i++) held.push(sys.fcntl(fillers[0], F_DUPFD_CLOEXEC, 0).value);
      fillers.push(...held);
      await t.expectError(
        `new EventLoop() with ${left} descriptor(s) left: the pipe cannot be made (EMFILE)`,
        () => {
          const loop = new EventLoop();
          t.defer(() => loop.close());
        },
        { what: "an error (EMFILE), after closing the epoll instance it made" },
      );
      free(taken);
      t.expectEqual(
        freeCount(fillers[0]),
        room,
        `how many descriptors are left after new EventLoop() failed with ${left} left`,
        "if a step of the constructor fails, close what it opened (the epoll fd) and rethrow",
      );
    }
  },
  { requires: ["ffi"] },
);

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

/**
 * Starts `loop.run()` as the check's background work: if it rejects, or returns
 * before the check calls `mayEnd()`, the step being awaited fails at once; the
 * loop's clean-up (close) ends it, and the check waits for that.
 */
function runInBackground(t: Grader, loop: Lesson.EventLoop) {
  let ending = false;
  const promise = loop.run();
  t.background("your loop.run()", promise, {
    onEnd: (outcome) =>
      "error" in outcome ? outcome.error : ending ? undefined : new GradeFailure({
        kind: "mismatch",
        step: "your loop.run()",
        expected: "run() to keep running until stop() or close()",
        actual: "it returned while an fd was still watched",
        note: "run() loops while it is not stopped and something is watched or a timer is set",
      }),
  });
  t.defer(() => ending = true); // runs before the loop's close() (defers run latest first)
  return {
    promise,
    /** From now on run() may return. */
    mayEnd: () => ending = true,
  };
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
  await t.expectError(
    "loop.watch(fd, {}, callback): an interest that asks for nothing",
    () => loop.watch(right, {}, () => {}),
    { what: "a RangeError" },
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
  const running = runInBackground(t, loop);
  await t.step(
    "loop.setTimer(1, callback) while the loop waits; the callback calls loop.stop()",
    () =>
      new Promise<void>((resolve) => {
        loop.setTimer(1, () => {
          resolve();
          running.mayEnd();
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
  await t.step("run() returns after stop()", () => running.promise, { timeoutMs: 1000 });
}, { requires: ["ffi"], timeoutMs: 8000 });

suite.test(
  "EventLoop: after a wake-up it waits again, and run() stays idle while nothing is ready",
  async (t) => {
    const loop = await newLoop(t);
    const [left, right] = pair(t);
    poke(t, left);
    const calls: number[] = [];
    await t.step(
      "watch an idle fd",
      () => loop.watch(right, { readable: true }, (fd) => calls.push(fd)),
    );
    const first = loop.runOnce(10_000);
    first.catch(() => {}); // awaited below
    const timers = await t.step(
      "100 × loop.setTimer(5000, callback) while runOnce(10000) waits: they wake the wait",
      () => Array.from({ length: 100 }, () => loop.setTimer(5000, () => {})),
    );
    t.expectEqual(
      await t.step("runOnce(10000) returns after the wake-up", () => first),
      0,
      "callbacks run by the round the wake-up ended (no fd ready, no timer due)",
    );
    await t.step(
      "loop.clearTimer(…) each of the 100 timers",
      () => timers.map((id) => loop.clearTimer(id)),
    );
    // Nothing is ready and no timer is left: the next wait must sleep until the grader writes.
    let settled: string | undefined;
    const second = loop.runOnce(10_000);
    second.then(
      (n) => settled = `resolved with ${n}`,
      (e) => settled = `rejected: ${describeError(e)}`,
    );
    await idleTurns(t, () => settled !== undefined);
    t.check(settled === undefined, {
      step: `runOnce(10000) again, with nothing ready and no timer: the grader's own 1 ms ` +
        `timer comes round ${IDLE_TURNS} times`,
      expected: "it still waits: no fd is ready and no timer is due",
      actual: `it had already returned (${settled}): its wait came back at once`,
      note: "when the wake-up pipe's event comes, drain the pipe (read until EAGAIN: 100 " +
        "wake-ups can leave 100 bytes): a byte left in it keeps it readable, so every later " +
        "wait returns at once and the loop spins",
    });
    write(left, new Uint8Array([7]));
    t.expectEqual(
      await t.step("runOnce(10000) once the grader wrote a byte to the watched fd", () => second),
      1,
      "callbacks run by that round",
    );
    read(right, new Uint8Array(8));

    // run() over the same idle fd: count its rounds (run() calls this.runOnce()).
    let rounds = 0;
    const runOnce = loop.runOnce.bind(loop);
    loop.runOnce = (maxWaitMs?: number) => {
      rounds++;
      return runOnce(maxWaitMs);
    };
    const running = runInBackground(t, loop);
    await idleTurns(t);
    t.check(rounds <= 2, {
      step: `loop.run() with one idle fd, while the grader's own timer comes round ${IDLE_TURNS} ` +
        "times",
      expected: "at most 2 rounds: run() sleeps in epoll_wait while nothing is ready",
      actual: `${rounds} rounds`,
      note: "with no timer, runOnce waits without a timeout (-1): a timeout of 0 makes run() spin",
    });
    running.mayEnd();
    loop.stop();
    await t.step("run() returns after stop()", () => running.promise, { timeoutMs: 1000 });
  },
  { requires: ["ffi"] },
);

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
    const running = runInBackground(t, loop); // waits at once: nothing is ready
    running.mayEnd();
    await t.step("loop.close() while run() waits", () => loop.close());
    await t.step("run() returns after close()", () => running.promise, { timeoutMs: 1000 });
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

    // A bare runOnce() in flight, no run(): close() must wait for it as well.
    const bare = await newLoop(t);
    const [bareLeft, bareRight] = pair(t);
    poke(t, bareLeft);
    await t.step(
      "a second loop: watch an idle fd",
      () => bare.watch(bareRight, { readable: true }, () => {}),
    );
    let settled: string | undefined;
    const waiting = bare.runOnce(10_000);
    waiting.then((n) => settled = `resolved with ${n}`, (e) => settled = describeError(e));
    t.defer(() => waiting.catch(() => {}));
    await t.step("loop.close() while a bare runOnce(10000) waits (no run())", () => bare.close());
    t.check(settled !== undefined, {
      step: "the runOnce(10000) in flight, once close() had resolved",
      expected: "settled before close() resolved: close() waits for the wait in flight, then " +
        "closes the epoll fd",
      actual: "still pending: close() closed the epoll fd while a worker thread was inside " +
        "epoll_wait on it",
      note: "keep the wait in flight (#waiting) and, in close(), wait for it too — not only " +
        "for run(): runOnce() can be called without run()",
    });
  },
  { requires: ["ffi"] },
);

suite.test(
  "EventLoop: watch refuses the loop's own fds; unwatch works after the fd was closed or reused; an unwatched fd wakes nothing",
  async (t) => {
    const loop = await newLoop(t);
    const [left, right] = pair(t);
    poke(t, left);
    const [wakeRead] = loop.ownFds().slice(1);
    await t.expectError(
      `loop.watch(${wakeRead}, { readable: true }, callback): the loop's own wake-up pipe`,
      () => loop.watch(wakeRead, { readable: true }, () => {}),
      { name: "RangeError", what: "the fd belongs to the event loop" },
    );

    // An unwatched fd that stays readable must not end the next wait.
    const [other, ready] = pair(t);
    await t.step("watch two fds; make one readable; unwatch it", () => {
      loop.watch(right, { readable: true }, () => {});
      loop.watch(ready, { readable: true }, () => {});
      write(other, new Uint8Array([1]));
      if (!loop.unwatch(ready)) throw new Error("unwatch(a watched fd) said false");
    });
    let settled: string | undefined;
    const waiting = loop.runOnce(10_000);
    waiting.then((n) => settled = `resolved with ${n}`, (e) => settled = describeError(e));
    await idleTurns(t, () => settled !== undefined);
    t.check(settled === undefined, {
      step: `runOnce(10000) with the unwatched fd still readable, for ${IDLE_TURNS} turns of ` +
        "the grader's own 1 ms timer",
      expected: "it still waits: the only watched fd is idle",
      actual: `it had already returned (${settled})`,
      note: "unwatch must EPOLL_CTL_DEL the fd: left in the interest list, a readable fd ends " +
        "every wait at once (and its callback is gone)",
    });
    write(left, new Uint8Array([2]));
    t.expectEqual(
      await t.step("runOnce(10000) once the watched fd is readable", () => waiting),
      1,
      "callbacks of that round",
    );
    read(right, new Uint8Array(8));

    // The caller closed the fd first (EBADF from the DEL), or its number was reused (ENOENT).
    const [doomedPeer, doomed] = socketPair({ nonBlocking: true });
    t.defer(() => sys.close(doomedPeer));
    loop.watch(doomed, { readable: true }, () => {});
    sys.close(doomed);
    t.expectEqual(
      await t.step("loop.unwatch(fd) after the caller closed the fd", () => loop.unwatch(doomed)),
      true,
      "unwatch(fd) after the fd was closed",
      "a closed fd has left the interest list already: EBADF (or ENOENT) from EPOLL_CTL_DEL is " +
        "fine, the fd was watched",
    );
    const [reusedPeer, reused] = socketPair({ nonBlocking: true });
    t.defer(() => sys.close(reusedPeer));
    t.defer(() => sys.close(reused));
    loop.watch(reused, { readable: true }, () => {});
    sys.close(reused);
    const [stand, standPeer] = socketPair({ nonBlocking: true }); // takes the closed number
    t.defer(() => sys.close(stand));
    t.defer(() => sys.close(standPeer));
    if (stand === reused) {
      t.expectEqual(
        await t.step(
          "loop.unwatch(fd) after the fd was closed and its number reused by a new socket",
          () => loop.unwatch(reused),
        ),
        true,
        "unwatch(fd) whose number now belongs to an fd epoll never saw",
        "EPOLL_CTL_DEL on a number that is open but not registered says ENOENT: fine too",
      );
    }

    // A watch that epoll_ctl refuses (the fd is closed) must leave nothing behind.
    const [gonePeer, gone] = socketPair({ nonBlocking: true });
    t.defer(() => sys.close(gonePeer));
    sys.close(gone);
    const before = loop.watchedFds();
    await t.expectError(
      `loop.watch(${gone}, { readable: true }, callback) on an fd that is closed`,
      () => loop.watch(gone, { readable: true }, () => {}),
      { what: "epoll_ctl's error (EBADF)" },
    );
    t.expectEqual(
      loop.watchedFds(),
      before,
      "loop.watchedFds() after a watch() that threw",
      "call epoll_ctl first and remember the watcher only once it succeeded: a watch that " +
        "throws watches nothing, and a phantom watcher keeps run() going and turns the next " +
        "watch of that number into a MOD (ENOENT)",
    );
    const [fresh, freshPeer] = socketPair({ nonBlocking: true }); // takes the closed number
    t.defer(() => sys.close(fresh));
    t.defer(() => sys.close(freshPeer));
    if (fresh === gone) {
      const heard: number[] = [];
      await t.step(
        `loop.watch(${fresh}, …) of a new socket that got that number`,
        () => loop.watch(fresh, { readable: true }, (fd) => heard.push(fd)),
        { note: "the failed watch must not have left the number marked as watched" },
      );
      write(freshPeer, new Uint8Array([3]));
      await t.step("loop.runOnce(1000) with the new socket readable", () => loop.runOnce(1000));
      t.expectEqual(heard, [fresh], "callbacks for the new socket");
      loop.unwatch(fresh);
    }
  },
  { requires: ["ffi"] },
);

suite.test(
  "EventLoop: a negative delay counts as 0; a timer fires only once due; clearTimer says whether it cleared",
  async (t) => {
    const loop = await newLoop(t);
    const order: string[] = [];
    const ids = await t.step(
      "setTimer(0, A), setTimer(-100, B), setTimer(10000, C)",
      () => [
        loop.setTimer(0, () => order.push("A")),
        loop.setTimer(-100, () => order.push("B")),
        loop.setTimer(10_000, () => order.push("C")),
      ],
    );
    const ran = await t.step("loop.runOnce(0)", () => loop.runOnce(0));
    t.expectEqual(
      order,
      ["A", "B"],
      "the timers that fired in that round, in order",
      "a negative delay counts as 0: B is due now like A, and set after it; C is not due",
    );
    t.expectEqual(ran, 2, "what runOnce(0) returned (callbacks run, timers included)");
    t.expectEqual(loop.pendingTimers, 1, "loop.pendingTimers: C still waits");
    t.expectEqual(
      await t.step(
        "loop.runOnce(0) while C (due in 10 s) is the only timer and nothing is watched",
        () => loop.runOnce(0),
        {
          note: "maxWaitMs caps the wait: the timeout is the time to the first timer, but never " +
            "more than maxWaitMs (runOnce(0) only looks)",
        },
      ),
      0,
      "what runOnce(0) returned with C not due",
    );
    t.expectEqual(loop.clearTimer(ids[0]), false, "clearTimer(A's id): A has fired already");
    t.expectEqual(loop.clearTimer(123_456), false, "clearTimer(an id never given out)");
    t.expectEqual(loop.pendingTimers, 1, "loop.pendingTimers after those two clearTimer calls");
    const d = loop.setTimer(20_000, () => order.push("D"));
    t.expectEqual(
      loop.clearTimer(ids[2]),
      true,
      "clearTimer(C's id): C is the first pending timer",
    );
    t.expectEqual(loop.clearTimer(d), true, "clearTimer(D's id)");
    t.expectEqual(loop.pendingTimers, 0, "loop.pendingTimers once C and D are cleared");

    const chain: string[] = [];
    const ranE = await t.step(
      "setTimer(0, E) where E calls setTimer(0, F); loop.runOnce(0)",
      () => {
        loop.setTimer(0, () => {
          chain.push("E");
          loop.setTimer(0, () => chain.push("F"));
        });
        return loop.runOnce(0);
      },
    );
    t.check(ranE === 1 && chain.join() === "E" && loop.pendingTimers === 1, {
      step: "the round that fired E (E set F, due at once, from its callback)",
      expected: "E alone fired: runOnce resolved with 1, and F still pending (pendingTimers 1)",
      actual: `fired: [${chain.join(", ")}], runOnce resolved with ${ranE}, pendingTimers ` +
        `${loop.pendingTimers}`,
      note: "fire the timers due by the time the timers' turn began (read the clock once): a " +
        "timer set by a timer's callback waits for the next round — otherwise a timer that " +
        "sets itself again with 0 ms keeps runOnce from ever returning",
    });
    t.expectEqual(
      await t.step("loop.runOnce(0) again", () => loop.runOnce(0)),
      1,
      "what the next round returned (F fires now)",
    );
  },
  { requires: ["ffi"] },
);

suite.test(
  "EventLoop: one run() and one wait at a time; run() again after it returned; close() forgets all",
  async (t) => {
    const loop = await newLoop(t);
    const [left, right] = pair(t);
    poke(t, left);
    await t.step("watch an idle fd", () => loop.watch(right, { readable: true }, () => {}));
    const waiting = loop.runOnce(10_000);
    waiting.catch(() => {}); // awaited below
    await t.expectError(
      "loop.runOnce() while another runOnce() waits",
      () => loop.runOnce(0),
      {
        what: "an Error: one wait at a time (two waits on one epoll fd would race for its events)",
      },
    );
    write(left, new Uint8Array([1]));
    await t.step("the first runOnce returns once the fd is readable", () => waiting);
    read(right, new Uint8Array(8));

    const running = runInBackground(t, loop);
    const second = await t.step("loop.run() while run() is running", () => {
      try {
        const promise = loop.run();
        promise.catch(() => {});
        return "it returned a promise";
      } catch (error) {
        return error instanceof Error ? undefined : `it threw ${String(error)}`;
      }
    });
    t.check(second === undefined, {
      step: "loop.run() while run() is running",
      expected: "it throws an Error at once (only a callback's error rejects run()'s promise)",
      actual: second ?? "",
      note: "check the running flag before you start a second loop over the same epoll fd",
    });
    running.mayEnd();
    loop.stop();
    await t.step("run() returns after stop()", () => running.promise, { timeoutMs: 1000 });
    let fired = false;
    loop.setTimer(0, () => fired = true);
    loop.unwatch(right);
    await t.step(
      "loop.run() again, with one timer due (it returns once none is left)",
      () => loop.run(),
    );
    t.check(fired, {
      step: "the second run()",
      expected: "the timer fired",
      actual: "it never ran",
      note: "run() must be able to run again once it has returned (clear what marks it running " +
        "in a finally)",
    });

    loop.watch(right, { readable: true }, () => {});
    loop.setTimer(30_000, () => {});
    await t.step("loop.close() twice at once", () => Promise.all([loop.close(), loop.close()]));
    t.expectEqual(loop.watchedFds(), [], "loop.watchedFds() after close()");
    t.expectEqual(loop.pendingTimers, 0, "loop.pendingTimers after close()");
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
  const error = await t.expectError(
    "loop.run()",
    () => loop.run(),
    { what: "run() to reject with the callback's error" },
  );
  t.check(error instanceof Error && error.message === "callback failed on purpose", {
    step: "the error run() rejected with",
    expected: "the callback's own error",
    actual: describeError(error),
  });
  await t.step("loop.close() after the failed run", () => loop.close());
}, { requires: ["ffi"] });

// ---------------------------------------------------------------------------
// Out of descriptors: accept4 fails with EMFILE
// ---------------------------------------------------------------------------

const EMFILE_NOTE = "out of descriptors (acceptOne throws: isOutOfDescriptors(error)) is not " +
  "the end: the client stays queued in the kernel. Call state.pauseAccepting(error) (with " +
  "epoll: EPOLL_CTL_DEL the listener and pass a resume that adds it back), stop accepting, " +
  "leave the listener out of your wait while state.acceptPaused, and keep serving the " +
  "connections you have (docs/11-select-poll-epoll.md, Under attack)";

for (const kind of KINDS) {
  suite.test(
    `${kind}: out of descriptors (accept4: EMFILE), pauses accepting, logs once, recovers`,
    async (t) => {
      const records = await captureLogs(t);
      const server = await start(t, kind);
      const [listenerFd] = server.openFds();
      const a = await t.connect(server.addr, "A");
      await a.send("A first\n");
      await a.expect("A first\n", { step: "the echo of A's first line" });
      // The grader's double of accept4 on your listener: while `failing`, each call fails
      // with EMFILE (the client stays queued, as the kernel keeps it).
      const real = sys.accept4;
      let failing = true;
      let failed = 0;
      sys.accept4 = (on, address, length, flags) => {
        if (on !== listenerFd || !failing) return real(on, address, length, flags);
        failed++;
        return { value: -1, errno: EMFILE };
      };
      t.defer(() => sys.accept4 = real);
      const logsBefore = records.length;
      const b = await t.connect(server.addr, "B (queued while accept4 fails)");
      let leftOut = false;
      await t.eventually(
        "your server while accept4 fails with EMFILE",
        () => {
          if (failed > 0 && !server.watchedFds().includes(listenerFd)) leftOut = true;
          return leftOut || failed >= 8;
        },
        {
          expected: "an accept4 call that fails, then a wait without the listener (a pause)",
          actual: () => `${failed} failed accept4 calls; watched now: ${list(server.watchedFds())}`,
          note: EMFILE_NOTE,
        },
      );
      t.check(leftOut, {
        step: "server.watchedFds() after accept4 failed with EMFILE",
        expected: `a wait without the listener (fd ${listenerFd}) while accepting is paused`,
        actual: `${failed} failed accept4 calls, the listener watched every time`,
        note: EMFILE_NOTE,
      });
      await a.send("A while accepting is paused\n");
      await a.expect("A while accepting is paused\n", {
        step: "A is served while accept4 fails",
        note: EMFILE_NOTE,
      });
      const warnings = records.slice(logsBefore).filter((r) =>
        r.level === "warning" || r.level === "error"
      );
      t.check(warnings.length === 1, {
        step: `the log of the episode (${failed} failed accept4 calls so far)`,
        expected: "exactly one warning for the episode (state.pauseAccepting logs it)",
        actual: `${warnings.length} warnings`,
        note: EMFILE_NOTE,
      });
      failing = false;
      await b.send("B after the episode\n");
      await b.expect("B after the episode\n", {
        step: "B is accepted and served once accept4 works again",
        // The pause under way (state.pauseAccepting's, one per failed accept4), then a step.
        timeoutMs: Math.max(...expectedBackoff(Math.max(failed, 1))) + STEP_MS,
        note: "when state.acceptPaused turns false (your loop is woken), put the listener back " +
          "in your wait and accept: the queued client is still there",
      });
    },
    { requires: ["ffi"], timeoutMs: 10_000 },
  );
}
