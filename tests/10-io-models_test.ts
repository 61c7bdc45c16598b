/**
 * Grading suite of lesson 10 — I/O models: blocking, non-blocking,
 * synchronous, asynchronous. Run it with `deno task lesson 10`.
 *
 * The libc checks use descriptors the grader makes itself where it can, so
 * each function is graded on its own. Learner code that blocks the main
 * thread (a descriptor without O_NONBLOCK) or never yields (a busy poll)
 * would freeze the grader too; a watchdog thread (workbook/harness/
 * freeze_guard.ts) notices, shuts the sockets down so the stuck call returns,
 * and the check then names the freeze. Timing is never graded here: the
 * serial/concurrent behaviour is observed with grader-controlled latches, and
 * the timings are printed by `deno task run 10 bench`.
 */
import {
  captureLogs,
  equalBytes,
  GradeFailure,
  type Grader,
  isGradeFailure,
  lessonSuite,
  logText,
  nextTurn,
  numberedLines,
  prefilledClient,
  type Probe,
  showBytes,
  STEP_MS,
  waitUntil,
} from "../workbook/harness/mod.ts";
import { clientInThread, FreezeGuard } from "../workbook/harness/freeze_guard.ts";
import {
  accept,
  close,
  connectTcp,
  createTcpSocket,
  EADDRINUSE,
  EAGAIN,
  EBADF,
  ECONNRESET,
  EMFILE,
  ENFILE,
  ENOTSOCK,
  ErrnoError,
  errnoName,
  F_GETFL,
  F_SETFL,
  getpeername,
  getsockname,
  isNonBlocking,
  listenTcp,
  O_NONBLOCK,
  pipe,
  poll,
  POLLIN,
  send,
  setLinger,
  SHUT_WR,
  shutdown,
  sys,
} from "workbook/libc";
import type * as Lesson from "../solutions/10-io-models/io_models.ts";

const suite = lessonSuite("10");
const load = (t: Grader) => t.load<typeof Lesson>();

/** `O_APPEND` (not in the bindings: sockets never need it; the flag check below does). */
const O_APPEND = 0o2000;
/** `fcntl(fd, F_GETFD)`: the descriptor flags (not the status flags of F_GETFL). */
const F_GETFD = 1;
/** The one descriptor flag: close this descriptor when the process execs another program. */
const FD_CLOEXEC = 1;
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** Closes a raw descriptor, ignoring "already closed" (learner code may have closed it). */
function closeFd(fd: number): void {
  sys.close(fd);
}

/** The status flags of a descriptor, as `fcntl(F_GETFL)` reports them. */
function statusFlags(fd: number): number {
  const r = sys.fcntl(fd, F_GETFL);
  if (r.value === -1) throw new ErrnoError("fcntl", r.errno, `F_GETFL fd ${fd}`);
  return r.value;
}

/** `ErrnoError: syscall "read", errno ECONNRESET`, for failure messages. */
function describeErrno(error: ErrnoError): string {
  return `${error.name}: syscall ${JSON.stringify(error.syscall)}, errno ${
    errnoName(error.errno)
  } (${error.errno})`;
}

function describeFlags(flags: number): string {
  const names = [
    flags & O_NONBLOCK ? "O_NONBLOCK" : "",
    flags & O_APPEND ? "O_APPEND" : "",
  ].filter(Boolean);
  return `0o${flags.toString(8)} (${
    names.length ? names.join(" | ") : "neither O_NONBLOCK nor O_APPEND"
  })`;
}

/** The lowest free descriptor number right now: where a leaked descriptor would sit. */
function lowestFreeFd(): number {
  const [readEnd, writeEnd] = pipe();
  sys.close(readEnd);
  sys.close(writeEnd);
  return readEnd;
}

/**
 * The descriptors of this process that are connections accepted on `listener`
 * (their local port is the listener's): what a server still holds, or leaked.
 */
function acceptedOn(listener: { fd: number; port: number }): string[] {
  const found: string[] = [];
  for (let fd = 0; fd < 4096; fd++) {
    if (fd === listener.fd || sys.fcntl(fd, F_GETFD).value === -1) continue;
    let port: number;
    try {
      port = getsockname(fd).port;
    } catch {
      continue; // not an inet socket
    }
    if (port !== listener.port) continue;
    let peer = "";
    try {
      const from = getpeername(fd);
      peer = ` (from ${from.address}:${from.port})`;
    } catch {
      peer = " (no peer any more: it reset)";
    }
    found.push(`fd ${fd}${peer}`);
  }
  return found;
}

/**
 * Descriptors the grader opened itself and may close early: each is closed
 * once (a closed number can be reused at once), the rest after the check.
 */
function ownFds(t: Grader) {
  const open = new Set<number>();
  t.defer(() => open.forEach((fd) => sys.close(fd)));
  return {
    add(fd: number): number {
      open.add(fd);
      return fd;
    },
    close(fd: number): void {
      if (open.delete(fd)) sys.close(fd);
    },
  };
}

/** Waits (blocking the grader briefly, at most `ms`) until `fd` is readable. */
function waitReadable(fd: number, ms = 1000): boolean {
  return poll([{ fd, events: POLLIN }], ms)[0] !== 0;
}

/** A started learner promise whose outcome can be looked at without awaiting it. */
interface Tracked<T> {
  promise: Promise<T>;
  settled: boolean;
  value?: T;
  error?: unknown;
  failed: boolean;
}

function track<T>(promise: Promise<T>): Tracked<T> {
  const tracked: Tracked<T> = { promise, settled: false, failed: false };
  promise.then(
    (value) => Object.assign(tracked, { settled: true, value }),
    (error) => Object.assign(tracked, { settled: true, failed: true, error }),
  );
  return tracked;
}

/** What the learner's polling loop had done: the stats, in one line. */
function showStats(stats: Lesson.PollingStats): string {
  return `{ rounds: ${stats.rounds}, acceptCalls: ${stats.acceptCalls}, wastedAccepts: ${stats.wastedAccepts}, ` +
    `readCalls: ${stats.readCalls}, wastedReads: ${stats.wastedReads} }`;
}

const YIELD_NOTE = "Between rounds, give the event loop a turn with a macrotask: " +
  "`await new Promise((r) => setTimeout(r, 0))`. `await Promise.resolve()` or `await null` is " +
  "not enough: a resolved promise continues before timers and sockets get their turn, so the loop " +
  "still never lets go";

/** Fails with the freeze the watchdog saw, in words that fit what the learner's code did. */
function failFrozen(
  t: Grader,
  guard: FreezeGuard,
  step: string,
  what: string,
  stats?: Lesson.PollingStats,
): never {
  const calls = stats ? stats.acceptCalls + stats.readCalls : 0;
  const spinning = stats !== undefined && calls > 1000;
  t.fail({
    kind: "timeout",
    step,
    expected: spinning
      ? `${what} to give the event loop a turn between rounds`
      : `each accept and read call of ${what} to return at once`,
    actual:
      `the whole program was frozen for ${
        (guard.longestFreezeMs / 1000).toFixed(1)
      } s: no timer ran, no connection moved. The grader's watchdog thread had to shut your ` +
      `sockets down to get control back` +
      (stats ? `; by then your loop had made ${calls} calls: ${showStats(stats)}` : ""),
    note: spinning
      ? `that is a busy poll that never yields: the grader's clients live in the same program, ` +
        `so they could not even connect while your loop spun. ${YIELD_NOTE}`
      : "your code was stuck inside ONE call: an accept or read on a descriptor without " +
        "O_NONBLOCK waits until something arrives, and nothing could arrive while it waited. " +
        "The listener needs O_NONBLOCK, and so does every connection you accept (Linux does " +
        "not copy it from the listener: pass SOCK_NONBLOCK to accept4)",
  });
}

/**
 * Waits, a macrotask at a time, until `condition()` holds. Fails when the
 * deadline passes, when the learner's server ended (or failed) early, or
 * when the watchdog had to rescue a frozen event loop.
 */
async function waitWhileServing(
  t: Grader,
  step: string,
  condition: () => boolean,
  options: {
    expected: string;
    actual: () => string;
    note?: string;
    serving?: Tracked<unknown>;
    servingName?: string;
    guard?: FreezeGuard;
    stats?: Lesson.PollingStats;
    timeoutMs?: number;
  },
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? STEP_MS;
  const waited = await waitUntil(() => {
    if (options.guard?.rescued) failFrozen(t, options.guard, step, "your loop", options.stats);
    if (condition()) return true;
    const serving = options.serving;
    if (serving?.failed) throw t.explain(serving.error, step);
    if (serving?.settled) {
      t.fail({
        step,
        expected: options.expected,
        actual: `your ${options.servingName ?? "server"} had already returned; ${options.actual()}`,
        note: options.note,
      });
    }
  }, { timeoutMs, everyMs: 0, signal: t.signal });
  if (waited.status === "aborted") throw waited.reason;
  if (waited.status !== "done") {
    t.fail({
      kind: "timeout",
      step,
      expected: `${options.expected} within ${timeoutMs} ms`,
      actual: options.actual(),
      note: options.note,
    });
  }
}

/** A step that threw EAGAIN gets the expected value and advice; other failures pass through. */
function explainEagain(error: unknown, expected: string, note: string): unknown {
  if (isGradeFailure(error) && error.details.kind === "threw" && /EAGAIN/.test(error.message)) {
    error.details.expected ??= expected;
    error.details.note ??= note;
    error.message = error.render();
  }
  return error;
}

// ---------------------------------------------------------------------------
// Part 1: non-blocking descriptors
// ---------------------------------------------------------------------------

suite.test("makeNonBlocking sets O_NONBLOCK and keeps the flags already set", async (t) => {
  const { makeNonBlocking } = await load(t);
  const [readEnd, writeEnd] = pipe();
  t.defer(() => closeFd(readEnd));
  t.defer(() => closeFd(writeEnd));
  // A flag the learner's code must not wipe out: F_SETFL replaces the whole set.
  sys.fcntl(writeEnd, F_SETFL, statusFlags(writeEnd) | O_APPEND);
  const before = statusFlags(writeEnd);
  await t.step(
    `makeNonBlocking(${writeEnd}) on a pipe with O_APPEND set`,
    () => makeNonBlocking(writeEnd),
  );
  const after = statusFlags(writeEnd);
  t.check((after & O_NONBLOCK) !== 0, {
    step: "fcntl(F_GETFL) after makeNonBlocking",
    expected: "O_NONBLOCK set",
    actual: describeFlags(after),
    note: "read the flags with F_GETFL, OR in O_NONBLOCK, write them back with F_SETFL",
  });
  t.check(after === (before | O_NONBLOCK), {
    step: "fcntl(F_GETFL) after makeNonBlocking",
    expected: `the old flags plus O_NONBLOCK: ${describeFlags(before | O_NONBLOCK)}`,
    actual: describeFlags(after),
    note: "F_SETFL replaces every flag it can change: pass the flags F_GETFL gave you with " +
      "O_NONBLOCK added (flags | O_NONBLOCK), or you switch off what someone else set",
  });

  const socket = createTcpSocket();
  t.defer(() => closeFd(socket));
  await t.step(`makeNonBlocking(${socket}) on a new TCP socket`, () => makeNonBlocking(socket));
  t.check(isNonBlocking(socket), {
    step: "fcntl(F_GETFL) on the socket",
    expected: "O_NONBLOCK set",
    actual: describeFlags(statusFlags(socket)),
  });

  // A write-only pipe end: its flags are exactly O_WRONLY (1), like many fresh descriptors.
  const [plainRead, plainWrite] = pipe();
  t.defer(() => closeFd(plainRead));
  t.defer(() => closeFd(plainWrite));
  const plainBefore = statusFlags(plainWrite);
  await t.step(
    `makeNonBlocking(${plainWrite}) on the write end of a new pipe (flags ${
      describeFlags(plainBefore)
    })`,
    () => makeNonBlocking(plainWrite),
  );
  t.check(statusFlags(plainWrite) === (plainBefore | O_NONBLOCK), {
    step: "fcntl(F_GETFL) on the pipe's write end after makeNonBlocking",
    expected: `the old flags plus O_NONBLOCK: ${describeFlags(plainBefore | O_NONBLOCK)}`,
    actual: describeFlags(statusFlags(plainWrite)),
    note: "fcntl failed only when it returned -1; any other value of F_GETFL is the flags",
  });

  const error = await t.expectError<ErrnoError>(
    "makeNonBlocking(1000000), a descriptor that does not exist",
    () => makeNonBlocking(1_000_000),
    { name: "ErrnoError", what: 'EBADF: throw new ErrnoError("fcntl", errno)' },
  );
  t.check(error.syscall === "fcntl" && error.errno === EBADF, {
    step: "the error makeNonBlocking threw for a descriptor that does not exist",
    expected: `new ErrnoError("fcntl", errno) with errno EBADF (${EBADF})`,
    actual: `syscall ${JSON.stringify(error.syscall)}, errno ${errnoName(error.errno)}`,
  });
}, { requires: ["ffi"] });

suite.test(
  "listenNonBlocking listens on 127.0.0.1, and accept answers EAGAIN at once",
  async (t) => {
    const { listenNonBlocking } = await load(t);
    const listener = await t.step("listenNonBlocking(0)", () => listenNonBlocking(0));
    t.defer(() => closeFd(listener.fd));
    const local = getsockname(listener.fd);
    t.check(local.address === "127.0.0.1" && local.port === listener.port && listener.port > 0, {
      step: "getsockname() on your listener's fd",
      expected: `127.0.0.1 and the port you returned (${listener.port}), not 0`,
      actual: `${local.address}:${local.port}`,
      note: "bind 127.0.0.1 and port 0, then ask getsockname which port the kernel chose",
    });
    t.check(isNonBlocking(listener.fd), {
      step: "fcntl(F_GETFL) on your listener's fd",
      expected: "O_NONBLOCK set",
      actual: `${describeFlags(statusFlags(listener.fd))}: your listener is BLOCKING`,
      note: "sockets start blocking. An accept() on this listener with nobody waiting would " +
        "freeze the whole program until a client came (the grader checked the flag instead of " +
        "trying). Call your makeNonBlocking(fd) after listen",
    });
    const r = sys.accept4(listener.fd, null, null, 0);
    if (r.value !== -1) closeFd(r.value);
    t.check(r.value === -1 && r.errno === EAGAIN, {
      step: "accept4() on your listener while nobody connects",
      expected: "-1 with errno EAGAIN, at once",
      actual: `${r.value}${r.value === -1 ? ` with errno ${errnoName(r.errno)}` : ""}`,
    });
    const client = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
    t.defer(() => closeFd(client));
    t.check(waitReadable(listener.fd), {
      step: "poll() your listener after the grader connected",
      expected: "readable: a connection waits to be accepted",
      actual: "not readable within 1 s",
      note: "did you call listen() on the socket?",
    });
    const conn = accept(listener.fd);
    if (conn !== null) closeFd(conn);
    t.check(conn !== null, {
      step: "accept4() on your listener after the grader connected",
      expected: "the grader's connection",
      actual: "EAGAIN",
    });
  },
  { requires: ["ffi"] },
);

suite.test(
  "listenNonBlocking(port) listens on that port; a taken port throws and leaks nothing; a restart works",
  async (t) => {
    const { listenNonBlocking } = await load(t);
    const fds = ownFds(t);
    // A port the grader found free: bound once (port 0), then released.
    const scout = listenTcp();
    const port = scout.port;
    closeFd(scout.fd);
    const first = await t.step(
      `listenNonBlocking(${port}), a port the grader found free`,
      () => listenNonBlocking(port),
    );
    fds.add(first.fd);
    const local = getsockname(first.fd);
    t.check(first.port === port && local.port === port && local.address === "127.0.0.1", {
      step: `listenNonBlocking(${port}): where your listener listens`,
      expected: `127.0.0.1:${port}, the port you asked for (and that port returned)`,
      actual: `it returned port ${first.port}; getsockname says ${local.address}:${local.port}`,
      note: 'bind the port you were given: 0 only means "let the kernel pick"',
    });

    const lowest = lowestFreeFd();
    const taken = await t.expectError<ErrnoError>(
      `listenNonBlocking(${port}) again while your first listener still holds the port`,
      () => {
        const second = listenNonBlocking(port);
        fds.add(second.fd);
      },
      { name: "ErrnoError", what: "EADDRINUSE: bind fails, the port is taken" },
    );
    t.check(taken.errno === EADDRINUSE, {
      step: "the error listenNonBlocking threw for a taken port",
      expected: `errno EADDRINUSE (${EADDRINUSE}), from bind`,
      actual: describeErrno(taken),
    });
    t.expectEqual(
      lowestFreeFd(),
      lowest,
      "the lowest free descriptor after the failed listenNonBlocking",
      "if a step after socket() fails, close the socket before you rethrow (try/catch): " +
        "otherwise each failed start leaks a descriptor",
    );

    // The grader connects; your listener's side closes first, so its end of the connection
    // waits in TIME_WAIT on the port after the listener is gone.
    const client = fds.add(connectTcp("127.0.0.1", port, { timeoutMs: 1000 }));
    waitReadable(first.fd);
    const conn = accept(first.fd);
    if (conn !== null) fds.add(conn);
    if (conn !== null) fds.close(conn);
    waitReadable(client);
    fds.close(client);
    fds.close(first.fd);
    const again = await t.step(
      `restart: listenNonBlocking(${port}) right after your listener on it closed, with a ` +
        "connection it closed first still in TIME_WAIT",
      () => listenNonBlocking(port),
      {
        note: "set SO_REUSEADDR (setReuseAddress(fd)) before bind: without it the kernel refuses " +
          "a port while old connections on it wait out TIME_WAIT, and a restarted server cannot " +
          "listen",
      },
    );
    fds.add(again.fd);
    t.expectEqual(again.port, port, `the port listenNonBlocking(${port}) returned on restart`);
  },
  { requires: ["ffi"] },
);

suite.test(
  "tryAccept answers null when nobody waits, and a NON-blocking connection when someone does",
  async (t) => {
    const { tryAccept } = await load(t);
    const listener = listenTcp({ nonBlocking: true });
    t.defer(() => closeFd(listener.fd));
    const eagainNote = 'EAGAIN is not a failure on a non-blocking socket: it means "nothing yet, ' +
      'come back later". Return null for it (and EWOULDBLOCK, the same number on Linux)';
    let nobody: number | null;
    try {
      nobody = await t.step(
        "tryAccept(listener) while nobody connects",
        () => tryAccept(listener.fd),
      );
    } catch (error) {
      throw explainEagain(error, "null: nobody is waiting yet", eagainNote);
    }
    t.expectEqual(nobody, null, "tryAccept(listener) while nobody connects", eagainNote);

    const client = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
    t.defer(() => closeFd(client));
    waitReadable(listener.fd);
    const fd = await t.step(
      "tryAccept(listener) after the grader connected",
      () => tryAccept(listener.fd),
    );
    t.check(typeof fd === "number" && fd >= 0, {
      step: "tryAccept(listener) after the grader connected",
      expected: "the new connection's descriptor (a number >= 0)",
      actual: String(fd),
    });
    t.defer(() => closeFd(fd!));
    t.check(getpeername(fd!).port === getsockname(client).port, {
      step: "getpeername() on the descriptor tryAccept returned",
      expected: `the grader's client (port ${getsockname(client).port})`,
      actual: `port ${getpeername(fd!).port}`,
    });
    t.check(isNonBlocking(fd!), {
      step: "fcntl(F_GETFL) on the connection tryAccept returned",
      expected: "O_NONBLOCK set on the accepted connection",
      actual: `${describeFlags(statusFlags(fd!))}: the connection is BLOCKING`,
      note: "on Linux a socket returned by accept does NOT inherit O_NONBLOCK from its " +
        "listener: the first read on it with no data would freeze the whole program. Ask for it " +
        "in the call: accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC)",
    });
    const fdFlags = sys.fcntl(fd!, F_GETFD).value;
    t.check(fdFlags !== -1 && (fdFlags & FD_CLOEXEC) !== 0, {
      step: "fcntl(F_GETFD) on the connection tryAccept returned",
      expected: "FD_CLOEXEC set (close-on-exec) on the accepted connection",
      actual: `descriptor flags ${fdFlags}: the connection would leak into every child process`,
      note: "a program that starts another (Deno.Command, a shell) hands it every descriptor " +
        "without close-on-exec: the child then holds your client's connection open. Ask for it " +
        "in the same accept4 call, next to SOCK_NONBLOCK: SOCK_CLOEXEC",
    });
    const again = await t.step(
      "tryAccept(listener) once the queue is empty",
      () => tryAccept(listener.fd),
    );
    if (typeof again === "number" && again >= 0) closeFd(again);
    t.expectEqual(again, null, "tryAccept(listener) once the queue is empty", eagainNote);

    const [readEnd, writeEnd] = pipe();
    t.defer(() => closeFd(readEnd));
    t.defer(() => closeFd(writeEnd));
    const error = await t.expectError(
      `tryAccept(${readEnd}), the read end of a pipe (not a socket)`,
      () => tryAccept(readEnd),
      { what: 'an ErrnoError (ENOTSOCK): only EAGAIN means "try later"' },
    );
    t.check(
      error instanceof ErrnoError && error.errno === ENOTSOCK && error.syscall === "accept4",
      {
        step: "the error tryAccept threw for a pipe",
        expected: `new ErrnoError("accept4", errno) with errno ENOTSOCK (${ENOTSOCK})`,
        actual: error instanceof ErrnoError ? describeErrno(error) : String(error),
      },
    );
  },
  { requires: ["ffi"] },
);

suite.test(
  "tryRead tells no data yet (null), data, end of stream (0) and a reset apart",
  async (t) => {
    const { tryRead } = await load(t);
    const listener = listenTcp({ nonBlocking: true });
    t.defer(() => closeFd(listener.fd));
    const client = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
    t.defer(() => closeFd(client));
    waitReadable(listener.fd);
    const conn = accept(listener.fd, { nonBlocking: true })!;
    t.defer(() => closeFd(conn));
    const buffer = new Uint8Array(64);

    let idle: number | null;
    try {
      idle = await t.step(
        "tryRead(conn) before the grader sent anything",
        () => tryRead(conn, buffer),
      );
    } catch (error) {
      throw explainEagain(
        error,
        "null: no data yet",
        'EAGAIN on a non-blocking socket means "no data yet, come back later": return null',
      );
    }
    t.expectEqual(idle, null, "tryRead(conn) before the grader sent anything");

    send(client, encoder.encode("hello"));
    waitReadable(conn);
    const n = await t.step(
      'tryRead(conn) after the grader sent "hello"',
      () => tryRead(conn, buffer),
    );
    t.expectEqual(n, 5, 'tryRead(conn) after the grader sent "hello"');
    t.expectEqual(
      showBytes(buffer.subarray(0, 5)),
      showBytes("hello"),
      "the bytes tryRead put in the buffer",
    );
    const drained = await t.step(
      "tryRead(conn) again: nothing more was sent",
      () => tryRead(conn, buffer),
    );
    t.expectEqual(drained, null, "tryRead(conn) again: nothing more was sent");

    shutdown(client, SHUT_WR);
    waitReadable(conn);
    const end = await t.step(
      "tryRead(conn) after the grader shut down its side (FIN)",
      () => tryRead(conn, buffer),
    );
    t.expectEqual(
      end,
      0,
      "tryRead(conn) after the grader shut down its side (FIN)",
      "read() returning 0 is end of stream, a real answer: keep it apart from null (EAGAIN). " +
        "Careful with `if (!n)`: it is true for both",
    );

    const resetter = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
    waitReadable(listener.fd);
    const victim = accept(listener.fd, { nonBlocking: true })!;
    t.defer(() => closeFd(victim));
    setLinger(resetter, 0);
    close(resetter); // RST
    waitReadable(victim);
    const error = await t.expectError(
      "tryRead(conn) after the grader reset the connection (RST)",
      () => tryRead(victim, buffer),
      { what: "an ErrnoError (ECONNRESET)" },
    );
    t.check(
      error instanceof ErrnoError && error.errno === ECONNRESET && error.syscall === "read",
      {
        step: "the error tryRead threw after a reset",
        expected: `new ErrnoError("read", errno) with errno ECONNRESET (${ECONNRESET})`,
        actual: error instanceof ErrnoError ? describeErrno(error) : String(error),
      },
    );
  },
  { requires: ["ffi"] },
);

// ---------------------------------------------------------------------------
// Part 1: the polling loop
// ---------------------------------------------------------------------------

/**
 * Starts the learner's polling server on a grader-made listener, watched by a
 * FreezeGuard. The loop is the check's background work: if it throws, or
 * returns before the check calls `mayEnd()`, the step being awaited fails at
 * once; after the check, clean-up waits for it to end. With `defaults: true`
 * it gets neither `stats` nor `signal` (both are optional); the loop then ends
 * when its clients have closed, or when clean-up closes the listener.
 */
async function startPolling(t: Grader, clients: number, options: { defaults?: boolean } = {}) {
  const { pollingEchoServer } = await load(t);
  const listener = listenTcp({ nonBlocking: true });
  t.defer(() => closeFd(listener.fd));
  const guard = await FreezeGuard.start({ port: listener.port });
  t.defer(() => guard.stop());
  const stats: Lesson.PollingStats = {
    rounds: 0,
    acceptCalls: 0,
    wastedAccepts: 0,
    readCalls: 0,
    wastedReads: 0,
  };
  const stop = new AbortController();
  const step = options.defaults
    ? `pollingEchoServer({ listener, clients: ${clients} }): no stats, no signal`
    : `pollingEchoServer({ listener, clients: ${clients}, stats, signal })`;
  const serving = await t.step(step, async () => {
    const started = track(
      options.defaults
        ? pollingEchoServer({ listener, clients })
        : pollingEchoServer({ listener, clients, stats, signal: stop.signal }),
    );
    await nextTurn();
    if (guard.rescued) failFrozen(t, guard, step, "pollingEchoServer", stats);
    if (started.failed) throw started.error;
    return started;
  });
  let ending = false;
  t.background("your pollingEchoServer", serving.promise, {
    onEnd: (outcome) =>
      "error" in outcome ? loopThrew(t, outcome.error) : ending ? undefined : new GradeFailure({
        kind: "mismatch",
        step: "your pollingEchoServer",
        expected: "it to keep serving while its clients are connected",
        actual: `it returned while the check still had clients connected; ${showStats(stats)}`,
        note: "loop while fewer than `clients` clients have been accepted OR some are still open",
      }),
  });
  // Runs before the probes close (defers run latest first, probes come later): stop the loop.
  t.defer(() => {
    ending = true;
    stop.abort();
  });
  const watch = { serving, servingName: "pollingEchoServer", guard, stats };
  const useful = () => stats.readCalls - stats.wastedReads;
  const accepted = () => stats.acceptCalls - stats.wastedAccepts;
  /** From now on the loop may return: the check is about to wait for it. */
  const mayEnd = () => ending = true;
  return { listener, guard, stats, stop, serving, watch, useful, accepted, mayEnd };
}

/** The polling loop threw: the failure, with advice for the usual cause. */
function loopThrew(t: Grader, error: unknown): GradeFailure {
  const failure = t.explain(error, "your pollingEchoServer");
  failure.details.expected ??= "it to keep serving until its clients are gone (or signal aborts)";
  if (error instanceof ErrnoError && error.syscall === "read") {
    failure.details.note ??= "a read that fails (tryRead throws, e.g. ECONNRESET from a client " +
      "that reset) ends THAT connection, like end of stream: catch it, close the fd, and keep " +
      "serving the others";
  }
  if (error instanceof ErrnoError && error.syscall === "send") failure.details.note ??= DROP_NOTE;
  if (error instanceof ErrnoError && error.syscall === "accept4") {
    failure.details.note ??= EMFILE_NOTE;
  }
  failure.message = failure.render();
  return failure;
}

/**
 * Watches the polling loop while its only open client is connected and
 * silent, one grader timer turn at a time, until it has made `rounds` more
 * rounds. Then checks what each round cost (exactly one accept while it still
 * needs clients, one read per open client, each answering EAGAIN) and how many
 * rounds came per turn of the grader's own 1 ms timer. Counts only, no clock:
 * a loop that ends each round with a timer comes round about once per turn,
 * one that yields with setImmediate hundreds of times.
 */
async function quietWindow(
  t: Grader,
  watch: {
    serving: Tracked<unknown>;
    servingName: string;
    guard: FreezeGuard;
    stats: Lesson.PollingStats;
  },
  what: { open: number; accepting: boolean; rounds?: number },
): Promise<void> {
  const { stats, guard } = watch;
  const wanted = what.rounds ?? 8;
  const before = { ...stats };
  const grown = () => ({
    rounds: stats.rounds - before.rounds,
    acceptCalls: stats.acceptCalls - before.acceptCalls,
    wastedAccepts: stats.wastedAccepts - before.wastedAccepts,
    readCalls: stats.readCalls - before.readCalls,
    wastedReads: stats.wastedReads - before.wastedReads,
  });
  const step = `${what.open} client(s) connected and silent: the grader watches ${wanted} more ` +
    "of your rounds, turn by turn of its own 1 ms timer";
  const deadline = performance.now() + 2000;
  let turns = 0;
  while (grown().rounds < wanted) {
    if (guard.rescued) failFrozen(t, guard, step, "your loop", stats);
    if (watch.serving.failed) throw t.explain(watch.serving.error, step);
    if (performance.now() > deadline) {
      t.fail({
        kind: "timeout",
        step,
        expected: `stats.rounds to grow by ${wanted} within 2000 ms`,
        actual: `it grew by ${grown().rounds}: ${showStats(stats)}`,
        note: "count every pass of the loop in stats.rounds (stats.rounds++ at the top of it)",
      });
    }
    await nextTurn(1); // a 1 ms timer of the grader's own: the yardstick for a loop's rounds
    turns++;
    t.throwIfInterrupted();
  }
  const d = grown();
  t.check(d.rounds <= 4 * turns + 4, {
    step,
    expected: "about one round per turn of the grader's own timer, at most " +
      `${4 * turns + 4} rounds in ${turns} turn(s)`,
    actual: `${d.rounds} rounds while the grader's own timer came round ${turns} time(s): ` +
      `${d.readCalls} read calls, all wasted, while nobody sent anything`,
    note: "end each round with a timer: `await new Promise((r) => setTimeout(r, 0))`. " +
      "setImmediate (or queueMicrotask, or a resolved promise) comes back before any timer is " +
      "due, so an idle loop burns a whole core asking sockets that have nothing to say",
  });
  const near = (a: number, b: number) => Math.abs(a - b) <= 1;
  const accepts = what.accepting ? d.rounds : 0;
  t.check(
    near(d.readCalls, what.open * d.rounds) && d.wastedReads === d.readCalls &&
      near(d.acceptCalls, accepts) && d.wastedAccepts === d.acceptCalls,
    {
      step: `${step}: what those rounds cost`,
      expected:
        `per round: one read of each open client (${what.open}) and ${
          what.accepting ? "one accept" : "no accept (all clients are in)"
        }, each answering EAGAIN and counted as wasted: ${what.open * d.rounds} reads and ` +
        `${accepts} accepts in ${d.rounds} rounds (±1)`,
      actual: `in ${d.rounds} rounds: ${d.readCalls} read calls (${d.wastedReads} wasted), ` +
        `${d.acceptCalls} accept calls (${d.wastedAccepts} wasted)`,
      note: COUNT_NOTE + ". Each round makes one call per open client and at most one accept",
    },
  );
}

const COUNT_NOTE = "count as you go, in the stats object you were given: acceptCalls and " +
  "readCalls for every call, wastedAccepts and wastedReads for each one that answered EAGAIN " +
  "(null)";

const ECHO_NOTE = "each round, read every open connection once and send back what the read " +
  "returned (sendAllNonBlocking does the sending)";

const EOF_NOTE = "read() returning 0 means the client closed: close that connection (and forget " +
  'it). null means "no data yet" — keep them apart: `if (!n)` is true for both';

suite.test(
  "pollingEchoServer polls: counts EAGAIN while nobody is there, then echoes 3 clients",
  async (t) => {
    const { listener, stats, serving, watch, useful, accepted, mayEnd } = await startPolling(
      t,
      3,
    );
    const address = { hostname: "127.0.0.1", port: listener.port };

    await waitWhileServing(
      t,
      "nobody has connected yet: your loop keeps calling accept",
      () => stats.wastedAccepts >= 3,
      {
        ...watch,
        expected: "wastedAccepts to reach 3 (every accept that answers EAGAIN is wasted)",
        actual: () => `your stats: ${showStats(stats)}`,
        note: COUNT_NOTE,
      },
    );
    t.check(stats.acceptCalls === stats.wastedAccepts && stats.readCalls === 0, {
      step: "your stats while nobody has connected",
      expected: "acceptCalls === wastedAccepts (every accept so far found nobody) and readCalls 0",
      actual: showStats(stats),
      note: COUNT_NOTE,
    });

    const a = await t.connect(address, "A");
    await waitWhileServing(
      t,
      "A connected: one of your accept calls takes it",
      () => accepted() === 1,
      {
        ...watch,
        expected: "acceptCalls - wastedAccepts to become 1",
        actual: () => `your stats: ${showStats(stats)}`,
        note: COUNT_NOTE,
      },
    );
    const wastedBefore = stats.wastedReads;
    await waitWhileServing(
      t,
      "A is connected and silent: your loop keeps reading it",
      () => stats.wastedReads >= wastedBefore + 3,
      {
        ...watch,
        expected: `wastedReads to grow by 3 (from ${wastedBefore})`,
        actual: () => `your stats: ${showStats(stats)}`,
        note: "each round, read every open connection once; a read that answers EAGAIN (null) " +
          "is wasted. " + COUNT_NOTE,
      },
    );
    t.check(stats.readCalls === stats.wastedReads, {
      step: "your stats while A is silent",
      expected: "readCalls === wastedReads: every read so far answered EAGAIN (null)",
      actual: showStats(stats),
      note: COUNT_NOTE,
    });
    await quietWindow(t, watch, { open: 1, accepting: true });

    await a.send("ping\n", { split: "bytes" });
    await a.expect("ping\n", {
      step: "read the echo of ping\\n (sent a byte at a time) on A",
      note: ECHO_NOTE,
    });
    t.check(useful() >= 1 && useful() <= 5, {
      step: "your stats after echoing 5 bytes to A",
      expected: "between 1 and 5 reads that found data (readCalls - wastedReads)",
      actual: `${useful()}: ${showStats(stats)}`,
      note: "only the reads that answered EAGAIN (null) are wasted; a read that returned bytes " +
        "is not",
    });

    const b = await t.connect(address, "B");
    const c = await t.connect(address, "C");
    const binary = Uint8Array.from({ length: 40 }, (_, i) => (i * 37 + 1) & 0xff);
    await b.send("hello from B\n");
    await c.send(binary, { split: [3, 1, 7] });
    await b.expect("hello from B\n", { note: ECHO_NOTE });
    await c.expect(binary, { step: "read the echo of C's 40 bytes", note: ECHO_NOTE });
    t.check(accepted() === 3, {
      step: "your stats once A, B and C are all echoed",
      expected: "acceptCalls - wastedAccepts === 3",
      actual: showStats(stats),
      note: COUNT_NOTE,
    });
    const acceptCallsWithThree = stats.acceptCalls;

    const usefulBefore = useful();
    await a.closeWrite();
    await a.expectEnd({
      step: "A shut down its side: your server reads 0 (end of stream) and closes A",
      note: EOF_NOTE,
    });
    t.check(useful() === usefulBefore + 1, {
      step: "your stats after A's end of stream (B and C stayed silent)",
      expected: `readCalls - wastedReads to grow by exactly 1, the read that returned 0: ${
        usefulBefore + 1
      }`,
      actual: `${useful()}: ${showStats(stats)}`,
      note: "a read that returns 0 found something — the end of the stream — so it is not " +
        "wasted. Only EAGAIN (null) is",
    });

    // B and C are in: from here on a quiet round makes no accept call.
    await quietWindow(t, watch, { open: 2, accepting: false, rounds: 4 });
    mayEnd();
    await b.close();
    await c.closeWrite();
    await c.expectEnd({ step: "C shut down its side: your server closes C", note: EOF_NOTE });
    const result = await t.step(
      "your pollingEchoServer returns once its 3 clients have all closed",
      () => serving.promise,
    );
    t.expectEqual(
      result && { ...result },
      { ...stats },
      "the stats pollingEchoServer returned",
      "return the stats object you counted in",
    );
    t.check(stats.acceptCalls === acceptCallsWithThree, {
      step: "your stats at the end",
      expected:
        `no accept calls once the 3rd client was accepted (acceptCalls stays ${acceptCallsWithThree})`,
      actual: showStats(stats),
      note: "stop calling accept once `clients` clients have been accepted: every call after " +
        "that can only be wasted",
    });
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

suite.test(
  "pollingEchoServer stops when its signal is aborted and closes what it holds",
  async (t) => {
    const { listener, stats, stop, serving, watch, accepted, mayEnd } = await startPolling(t, 2);
    const a = await t.connect({ hostname: "127.0.0.1", port: listener.port }, "A");
    await waitWhileServing(
      t,
      "A connected: one of your accept calls takes it",
      () => accepted() === 1,
      {
        ...watch,
        expected: "acceptCalls - wastedAccepts to become 1",
        actual: () => `your stats: ${showStats(stats)}`,
        note: COUNT_NOTE,
      },
    );
    await a.send("before the stop\n");
    await a.expect("before the stop\n", { note: ECHO_NOTE });
    mayEnd();
    stop.abort();
    const result = await t.step(
      "pollingEchoServer returns after signal.abort()",
      () => serving.promise,
    );
    await a.expectEnd({
      step: "your server closes A when it stops",
      note: "close every connection still open when you stop: a finally around the loop",
    });
    t.expectEqual(result && { ...result }, { ...stats }, "the stats pollingEchoServer returned");
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

suite.test(
  "pollingEchoServer drops a client that resets and serves the others (no stats, no signal)",
  async (t) => {
    const { listener, serving, mayEnd } = await startPolling(t, 3, { defaults: true });
    const address = { hostname: "127.0.0.1", port: listener.port };
    const a = await t.connect(address, "A");
    await a.send("A first\n");
    await a.expect("A first\n", { note: ECHO_NOTE });
    await t.reset(address, "B resets");
    const c = await t.connect(address, "C");
    await c.send("after the reset\n", { split: "bytes" });
    await c.expect("after the reset\n", {
      step: "C is served after B reset its connection",
      note: "a read that fails (tryRead throws ECONNRESET for a client that reset) ends THAT " +
        "connection, like end of stream: catch it, close the fd, and keep serving the others",
    });
    await a.send("A again\n");
    await a.expect("A again\n", { step: "A is still served", note: ECHO_NOTE });
    mayEnd();
    await a.close();
    await c.closeWrite();
    await c.expectEnd({ step: "C shut down its side: your server closes C", note: EOF_NOTE });
    const result = await t.step(
      "your pollingEchoServer returns once its 3 clients are gone",
      () => serving.promise,
    );
    const r = result as Lesson.PollingStats;
    t.check(
      typeof r === "object" && r !== null && r.acceptCalls - r.wastedAccepts === 3 &&
        r.rounds > 0 && r.readCalls >= r.wastedReads,
      {
        step: "the stats pollingEchoServer returned (it was given no stats object)",
        expected: "a fresh stats object, counted as you went: 3 accepted clients, rounds > 0",
        actual: typeof r === "object" && r !== null ? showStats(r) : String(r),
        note: "without options.stats, count into newPollingStats() and return that",
      },
    );
    await c.close();
    const held = acceptedOn(listener);
    t.check(held.length === 0, {
      step: "the descriptors still open on your listener's port after pollingEchoServer returned",
      expected: "none: A and C closed, B reset, so each of their connections was closed",
      actual: `${held.length} still open: ${held.join(", ")}`,
      note: "a connection that reset is over, but its descriptor is still yours: close(fd) it " +
        "as well as forgetting it, or each client that resets leaks a descriptor until the " +
        "server runs out (EMFILE)",
    });
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

suite.test(
  "pollingEchoServer yields a macrotask every round, also while data keeps coming",
  async (t) => {
    const { listener, stats, watch, useful, mayEnd, serving } = await startPolling(t, 1);
    // A raw client of the grader's whose bytes are all in the kernel before your loop even
    // accepts it: from then on every read of yours finds data, round after round.
    const payload = numberedLines(256 * 1024, "stream");
    const { fd: client, sent } = prefilledClient(t, listener.port, payload);
    const step = `a client whose ${sent} bytes are all waiting: the grader counts your rounds ` +
      "between two turns of its own 0 ms timer while you read and echo them";
    const received = new Uint8Array(sent);
    let got = 0;
    const marks = [stats.rounds];
    const deadline = performance.now() + 3000;
    while (got < sent) {
      if (watch.guard.rescued) failFrozen(t, watch.guard, step, "your loop", stats);
      if (serving.failed) throw t.explain(serving.error, step);
      if (performance.now() > deadline) {
        t.fail({
          kind: "timeout",
          step,
          expected: `the echo of all ${sent} bytes within 3000 ms`,
          actual: `${got} bytes came back; ${showStats(stats)}`,
          note: ECHO_NOTE,
        });
      }
      await nextTurn();
      marks.push(stats.rounds);
      for (let i = 0; i < 64 && got < sent; i++) {
        const n = sys.read(client, received.subarray(got)).value;
        if (n <= 0) break;
        got += n;
      }
      t.throwIfInterrupted();
    }
    const perTurn = marks.slice(1).map((rounds, i) => rounds - marks[i]);
    const most = Math.max(...perTurn);
    t.check(most <= 4, {
      step,
      expected: "at most 4 of your rounds between two turns of the grader's timer: each round " +
        "ends with a timer turn, whether it found data or not",
      actual: `${most} rounds in one turn (rounds per turn: ${perTurn.join(", ")}); ` +
        `${useful()} reads found data: ${showStats(stats)}`,
      note: "yield at the end of EVERY round, not only when a round found nothing: a client " +
        "that keeps sending would otherwise hold the whole program (timers, the other clients) " +
        "for as long as it likes. " + YIELD_NOTE,
    });
    t.check(equalBytes(received, payload.subarray(0, sent)), {
      step: "the echo of the stream",
      expected: `the ${sent} bytes sent, in order`,
      actual: showBytes(received, 60),
      note: ECHO_NOTE,
    });
    mayEnd();
    shutdown(client, SHUT_WR);
    await t.step(
      "your pollingEchoServer returns once its client has closed",
      () => serving.promise,
    );
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

const DROP_NOTE = "a send that fails (sendAllNonBlocking throws: the client reset while its " +
  "echo was on the way, or never reads) ends THAT connection: catch it, close the fd, and keep " +
  "serving the others (docs/10-io-models.md, Under attack)";

suite.test(
  "pollingEchoServer drops a client whose echo fails (send: ECONNRESET) and serves the others",
  async (t) => {
    const { listener } = await startPolling(t, 3);
    const address = { hostname: "127.0.0.1", port: listener.port };
    // The grader's double of send(2): an echo that starts with "GONE" fails as if that
    // client had reset while its echo was being sent.
    const real = sys.send;
    let failed = 0;
    sys.send = (fd, bytes, flags) => {
      if (bytes.length >= 4 && new TextDecoder().decode(bytes.subarray(0, 4)) === "GONE") {
        failed++;
        return { value: -1, errno: ECONNRESET };
      }
      return real(fd, bytes, flags);
    };
    t.defer(() => sys.send = real);
    const a = await t.connect(address, "A");
    await a.send("A first\n");
    await a.expect("A first\n", { note: ECHO_NOTE });
    const b = await t.connect(address, "B");
    await b.send("GONE: my echo's send fails with ECONNRESET\n");
    await b.expectEnd({
      step: "B's echo failed (ECONNRESET from send): your server closes B",
      note: DROP_NOTE,
    });
    await a.send("A after B\n");
    await a.expect("A after B\n", {
      step: "A is still served after B's send failed",
      note: DROP_NOTE,
    });
    const c = await t.connect(address, "C");
    await c.send("C\n");
    await c.expect("C\n", {
      step: "C is accepted and served after B's send failed",
      note: DROP_NOTE,
    });
    t.check(failed >= 1, {
      step: "the grader's send double",
      expected: "your server to send B's echo (it failed once, on purpose)",
      actual: `${failed} failed send calls`,
    });
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

const EMFILE_NOTE = "out of descriptors (tryAccept throws an ErrnoError with EMFILE or ENFILE) " +
  "is not the end: the client stays queued in the kernel. Stop calling accept4 for a pause " +
  "(10 ms, doubling up to 1 s while it keeps failing), log ONE warning for the episode, keep " +
  "serving the open connections, and accept as usual once accept4 no longer fails " +
  "(docs/10-io-models.md, Under attack)";

/** One out-of-descriptors episode the grader's accept4 double played. */
interface Episode {
  errno: number;
  /** Failing calls still to come. */
  left: number;
  /** performance.now() at each failing call. */
  times: number[];
  /** stats.rounds, stats.acceptCalls and the log's length when it began... */
  start: { rounds: number; calls: number; log: number };
  /** ...and at the first accept4 call after its last failure (the episode is over). */
  end?: { rounds: number; calls: number; log: number };
}

/**
 * The grader's double of accept4 on the learner's listener: `fail(n, errno)`
 * makes the next `n` calls fail with `errno`, as when the process (EMFILE) or
 * the system (ENFILE) is out of descriptors; the client stays queued.
 */
function failingAccepts(
  t: Grader,
  listenFd: number,
  stats: Lesson.PollingStats,
  records: { level: string }[],
) {
  const real = sys.accept4;
  const episodes: Episode[] = [];
  const mark = () => ({ rounds: stats.rounds, calls: stats.acceptCalls, log: records.length });
  sys.accept4 = (on, addr, length, flags) => {
    const episode = episodes.at(-1);
    if (on === listenFd && episode && episode.left > 0) {
      episode.left--;
      episode.times.push(performance.now());
      return { value: -1, errno: episode.errno };
    }
    if (on === listenFd && episode && !episode.end) episode.end = mark();
    return real(on, addr, length, flags);
  };
  t.defer(() => sys.accept4 = real);
  return {
    episodes,
    fail(left: number, errno: number): Episode {
      const episode: Episode = { errno, left, times: [], start: mark() };
      episodes.push(episode);
      return episode;
    },
    /** The warnings (and errors) logged from the episode's start to its end. */
    warnings(episode: Episode): number {
      return records.slice(episode.start.log, episode.end?.log ?? records.length).filter((r) =>
        r.level === "warning" || r.level === "error" || r.level === "fatal"
      ).length;
    },
  };
}

suite.test(
  "pollingEchoServer, out of descriptors (accept4: EMFILE), pauses accepting and recovers",
  async (t) => {
    const records = await captureLogs(t);
    const { listener, stats } = await startPolling(t, 3);
    const address = { hostname: "127.0.0.1", port: listener.port };
    const a = await t.connect(address, "A");
    await a.send("A first\n");
    await a.expect("A first\n", { note: ECHO_NOTE });
    const double = failingAccepts(t, listener.fd, stats, records);
    const FAILS = 6;
    const episode = double.fail(FAILS, EMFILE);
    await a.send("A while accept4 fails\n");
    await a.expect("A while accept4 fails\n", {
      step: "A is served while accept4 fails with EMFILE",
      note: EMFILE_NOTE,
    });
    await t.eventually(
      `your server makes the ${FAILS} accept4 calls that fail`,
      () => episode.left === 0,
      {
        expected: `${FAILS} more accept4 calls on your listener (each failing with EMFILE)`,
        actual: () => `${FAILS - episode.left} so far; ${showStats(stats)}`,
        note: EMFILE_NOTE,
        // The pauses alone (10 + 20 + 40 + 80 + 160 ms) take 310 ms.
        timeoutMs: 2000,
      },
    );
    const b = await t.connect(address, "B");
    await b.send("B after the episode\n");
    await b.expect("B after the episode\n", {
      step: "B is accepted and served once accept4 works again",
      note: EMFILE_NOTE,
      timeoutMs: 2000, // after the 6th failure, a pause of 320 ms
    });
    const end = episode.end ?? { rounds: stats.rounds, calls: stats.acceptCalls };
    const spent = {
      rounds: end.rounds - episode.start.rounds,
      calls: end.calls - episode.start.calls,
    };
    t.check(spent.calls < spent.rounds, {
      step: `your loop while its ${FAILS} accept4 calls failed with EMFILE`,
      expected: "fewer accept calls than rounds: a pause between the failing calls",
      actual: `${spent.calls} accept calls in ${spent.rounds} rounds`,
      note: EMFILE_NOTE,
    });
    // The pauses have a floor the grader can see without timing luck: a loop that pauses p ms
    // cannot call accept4 again sooner. The gaps may come out longer (a busy machine), never
    // shorter.
    const gaps = episode.times.slice(1).map((time, i) => time - episode.times[i]);
    const pauses = gaps.map((_, i) => Math.min(10 * 2 ** i, 1000));
    t.check(gaps.every((gap, i) => gap >= pauses[i] - 2), {
      step: `the time between your ${FAILS} failing accept4 calls (EMFILE, one episode)`,
      expected: `at least the pause: ${pauses.join(", ")} ms (10 ms, doubling while it fails)`,
      actual: gaps.map((gap) => `${gap.toFixed(1)} ms`).join(", "),
      note: "each failure in a row doubles the pause (10, 20, 40 … up to 1000 ms): a fixed " +
        "pause keeps hammering a kernel that has no descriptor to give. " + EMFILE_NOTE,
    });
    t.check(double.warnings(episode) === 1, {
      step: `the log while ${FAILS} accept4 calls failed with EMFILE (one episode)`,
      expected: "exactly one warning for the episode",
      actual: `${double.warnings(episode)} warnings`,
      note: EMFILE_NOTE,
    });
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

suite.test(
  "pollingEchoServer, out of descriptors twice (EMFILE, then ENFILE): one warning each time, and it recovers each time",
  async (t) => {
    const records = await captureLogs(t);
    const { listener, stats, watch } = await startPolling(t, 3);
    const address = { hostname: "127.0.0.1", port: listener.port };
    const a = await t.connect(address, "A");
    await a.send("A first\n");
    await a.expect("A first\n", { note: ECHO_NOTE });
    const double = failingAccepts(t, listener.fd, stats, records);
    const episodes = [
      { errno: EMFILE, client: "B", why: "EMFILE: this process is out of descriptors" },
      { errno: ENFILE, client: "C", why: "ENFILE: the whole system is out of descriptors" },
    ];
    for (const [i, { errno, client, why }] of episodes.entries()) {
      const episode = double.fail(2, errno);
      const name = `episode ${i + 1}: 2 accept4 calls fail with ${why}`;
      await waitWhileServing(t, `${name}; your loop goes on`, () => episode.end !== undefined, {
        ...watch,
        expected: "the 2 failing accept4 calls, then one that works again (the episode is over)",
        actual: () => `${2 - episode.left} failing call(s) made; ${showStats(stats)}`,
        note: EMFILE_NOTE,
        timeoutMs: 2000,
      });
      t.check(double.warnings(episode) === 1, {
        step: `the log during ${name}`,
        expected: `exactly one warning for episode ${i + 1}` +
          (i > 0
            ? " (the first episode ended when an accept4 call worked: this is a new one)"
            : ""),
        actual: `${double.warnings(episode)} warnings`,
        note: "warn once per episode: at its first failure. An accept4 call that does not fail " +
          "ends the episode, so the next failure starts a new one, with its own warning and a " +
          "pause of 10 ms again. " + EMFILE_NOTE,
      });
      const probe = await t.connect(address, client);
      await probe.send(`${client} after episode ${i + 1}\n`);
      await probe.expect(`${client} after episode ${i + 1}\n`, {
        step: `${client} is accepted and served after episode ${i + 1} (${errnoName(errno)})`,
        note: EMFILE_NOTE,
      });
    }
  },
  { requires: ["ffi"], timeoutMs: 8000 },
);

// ---------------------------------------------------------------------------
// Part 2: the blocking way
// ---------------------------------------------------------------------------

const BLOCKING_CASES = [
  {
    name:
      "blockingEchoOnce serves a client running on another thread, and nothing else runs meanwhile",
    payload: encoder.encode("a request from another thread\n"),
  },
  {
    // More than one read can take (and than a socket buffer holds at first): read until 0.
    name: "blockingEchoOnce reads until end of stream: a 256 KiB request comes back whole",
    payload: numberedLines(256 * 1024, "big"),
  },
];

for (const { name, payload } of BLOCKING_CASES) {
  suite.test(
    name,
    async (t) => {
      const { blockingEchoOnce } = await load(t);
      const listener = listenTcp(); // blocking, as the function expects
      t.defer(() => closeFd(listener.fd));
      const guard = await FreezeGuard.start({ port: listener.port, afterMs: 2000 });
      t.defer(() => guard.stop());
      const client = clientInThread({
        port: listener.port,
        payload,
        transcript: t.transcript,
        label: "thread client",
        timeoutMs: 5000,
      });
      t.defer(() => client.stop());
      let timerRan = false;
      const timer = setTimeout(() => timerRan = true, 0);
      t.defer(() => clearTimeout(timer));

      const step = `blockingEchoOnce(listener): blocking calls on the main thread; the client ` +
        `sends ${payload.length} bytes, then shuts down its side`;
      const stuckNote =
        "the grader's client (on its own thread) had connected, sent its request and " +
        "shut down its side, so accept, then reads until one returns 0, then send and close " +
        "would all have returned. Read until read() returns 0 (end of stream), send it all back, close";
      let outcome: { n: number; ms: number; timerRan: boolean };
      try {
        outcome = await t.step(step, () => {
          const started = performance.now();
          const n = blockingEchoOnce(listener.fd);
          return { n, ms: performance.now() - started, timerRan };
        }, { timeoutMs: 8000 });
      } catch (error) {
        if (guard.rescued) {
          t.fail({
            kind: "timeout",
            step,
            expected: "your call to return once the client was served",
            actual:
              `it was still blocked after ${(guard.longestFreezeMs / 1000).toFixed(1)} s; the ` +
              `grader's watchdog shut the sockets down to wake it, and then it threw ${error}`,
            note: stuckNote,
          });
        }
        throw error;
      }
      t.transcript.record("main thread", "note", {
        detail: `blockingEchoOnce held the main thread for ${outcome.ms.toFixed(1)} ms`,
      });
      t.check(!guard.rescued, {
        step,
        expected: "your call to return once the client was served",
        actual:
          `it blocked for ${(guard.longestFreezeMs / 1000).toFixed(1)} s, until the grader's ` +
          "watchdog shut the sockets down",
        note: stuckNote,
      });
      const result = await t.step("the thread client's conversation ends", () => client.result, {
        timeoutMs: 8000,
      });
      t.check(result.outcome === "eof", {
        step: "the thread client's conversation",
        expected: "the echo, then end of stream (your code closes the connection)",
        actual: `${result.outcome} after receiving ${showBytes(result.received)}`,
        note: result.outcome === "error"
          ? "a socket closed while bytes it received are still unread is reset (RST), not " +
            "closed cleanly: read until read() returns 0 (end of stream) before you echo and close"
          : undefined,
      });
      if (result.received.length !== payload.length || !equalBytes(result.received, payload)) {
        t.fail({
          step: "the bytes the thread client got back",
          expected: `all ${payload.length} bytes it sent, in order: ${showBytes(payload, 60)}`,
          actual: `${result.received.length} bytes: ${showBytes(result.received, 60)}`,
          note: "one read returns what has arrived so far, at most the buffer's size: read until " +
            "read() returns 0 (end of stream), keeping every chunk, then send them all back",
        });
      }
      t.expectEqual(outcome.n, payload.length, "blockingEchoOnce's return value (bytes echoed)");
      t.check(!outcome.timerRan, {
        step: "a 0 ms timer set just before your call",
        expected:
          "still waiting when your call returned: a blocking call holds the whole event loop",
        actual: "it had already run",
        note: "blockingEchoOnce must stay synchronous: plain blocking libc calls, no await",
      });
    },
    { requires: ["ffi"], timeoutMs: 8000 },
  );
}

suite.test(
  "blockingEchoOnce throws ErrnoError when a call fails, and closes the connection it accepted",
  async (t) => {
    const { blockingEchoOnce } = await load(t);
    const listener = listenTcp(); // blocking
    t.defer(() => closeFd(listener.fd));
    const guard = await FreezeGuard.start({ port: listener.port, afterMs: 2000 });
    t.defer(() => guard.stop());
    // A client that connects and resets at once: it waits in the queue, so accept returns it,
    // and the first read says ECONNRESET. Nothing here blocks.
    const resetter = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
    waitReadable(listener.fd);
    setLinger(resetter, 0);
    close(resetter); // RST
    t.transcript.record("reset client", "note", { detail: "connected, then reset (RST)" });
    const lowest = lowestFreeFd();
    const reset = await t.expectError<ErrnoError>(
      "blockingEchoOnce(listener) for a client that connected and reset (RST)",
      () => blockingEchoOnce(listener.fd),
      { name: "ErrnoError", what: 'ECONNRESET: throw new ErrnoError("read", errno)' },
    );
    t.check(!guard.rescued, {
      step: "blockingEchoOnce(listener) for a client that connected and reset (RST)",
      expected: "the call to return (throw) at once: the connection was already reset",
      actual: "it blocked until the grader's watchdog shut the sockets down",
    });
    t.check(reset.syscall === "read" && reset.errno === ECONNRESET, {
      step: "the error blockingEchoOnce threw for a client that reset",
      expected: `new ErrnoError("read", errno) with errno ECONNRESET (${ECONNRESET})`,
      actual: describeErrno(reset),
      note: 'only EINTR means "call read again"; any other -1 from read is an error to throw',
    });
    t.expectEqual(
      lowestFreeFd(),
      lowest,
      "the lowest free descriptor after blockingEchoOnce threw",
      "close the accepted connection in a finally: it must not leak when a call fails",
    );

    const [readEnd, writeEnd] = pipe();
    t.defer(() => closeFd(readEnd));
    t.defer(() => closeFd(writeEnd));
    const notSocket = await t.expectError<ErrnoError>(
      `blockingEchoOnce(${readEnd}), the read end of a pipe (not a listening socket)`,
      () => blockingEchoOnce(readEnd),
      { name: "ErrnoError", what: 'ENOTSOCK: throw new ErrnoError("accept4", errno)' },
    );
    t.check(notSocket.syscall === "accept4" && notSocket.errno === ENOTSOCK, {
      step: "the error blockingEchoOnce threw for a pipe",
      expected: `new ErrnoError("accept4", errno) with errno ENOTSOCK (${ENOTSOCK})`,
      actual: describeErrno(notSocket),
      note: 'accept4 failed when it returned -1: EINTR and ECONNABORTED mean "try again", ' +
        "anything else is an error to throw",
    });
  },
  { requires: ["ffi"] },
);

// ---------------------------------------------------------------------------
// Part 3: serial and concurrent servers
// ---------------------------------------------------------------------------

/**
 * A listener the grader hands to learner servers: it counts the accept()
 * calls and remembers those made while a grader handler was still running.
 */
class WatchedListener implements Deno.Listener<Deno.TcpConn, Deno.NetAddr> {
  readonly inner: Deno.TcpListener;
  readonly #busy: () => number;
  acceptCalls = 0;
  acceptsWhileBusy = 0;
  acceptRejected = false;
  /** accept() calls still to fail on purpose, like a server out of descriptors (EMFILE). */
  failNext = 0;

  constructor(busy: () => number) {
    this.inner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#busy = busy;
  }

  get addr(): Deno.NetAddr {
    return this.inner.addr;
  }

  accept(): Promise<Deno.TcpConn> {
    this.acceptCalls++;
    if (this.#busy() > 0) this.acceptsWhileBusy++;
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(
        new Error("Too many open files (os error 24): the grader failed this accept() on purpose"),
      );
    }
    return this.inner.accept().catch((error) => {
      this.acceptRejected = true;
      throw error;
    });
  }

  close(): void {
    try {
      this.inner.close();
    } catch {
      // closed already
    }
  }

  ref(): void {
    this.inner.ref();
  }

  unref(): void {
    this.inner.unref();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterableIterator<Deno.TcpConn> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        throw error;
      }
      yield conn;
    }
  }
}

/** Grader handlers that wait at gates: who is running, who ran, the most at once. */
function gatedHandlers(options: { failFirst?: boolean } = {}) {
  const state = {
    active: 0,
    maxActive: 0,
    started: [] as number[],
    gates: [] as PromiseWithResolvers<void>[],
  };
  const handler = async (conn: Deno.Conn) => {
    const index = state.started.length;
    state.started.push((conn.remoteAddr as Deno.NetAddr).port);
    const gate = Promise.withResolvers<void>();
    state.gates.push(gate);
    state.active++;
    state.maxActive = Math.max(state.maxActive, state.active);
    try {
      if (options.failFirst && index === 0) {
        throw new Error("the grader's handler failed on purpose");
      }
      await gate.promise;
      await conn.write(encoder.encode("done\n"));
    } finally {
      state.active--;
    }
  };
  const openAll = () => state.gates.forEach((gate) => gate.resolve());
  return { state, handler, openAll };
}

/**
 * Starts the learner's `kind` server on a watched listener, with gated grader
 * handlers (`failFirst`: the first one throws; `failAccepts`: that many
 * accept() calls fail first); cleans up whatever happens. `step` names the
 * call (default `kind(listener, handler)`).
 */
async function startGated(
  t: Grader,
  kind: "serveSerial" | "serveConcurrent",
  options: { step?: string; failFirst?: boolean; failAccepts?: number } = {},
) {
  const lesson = await load(t);
  const h = gatedHandlers({ failFirst: options.failFirst });
  const listener = new WatchedListener(() => h.state.active);
  listener.failNext = options.failAccepts ?? 0;
  t.defer(() => listener.close());
  const serving = await t.step(options.step ?? `${kind}(listener, handler)`, async () => {
    const started = track(lesson[kind](listener, h.handler));
    await nextTurn();
    if (started.failed) throw started.error;
    return started;
  });
  t.defer(async () => {
    h.openAll();
    listener.close();
    await serving.promise.catch(() => {});
  });
  return { h, listener, serving };
}

function portOf(probe: Probe): number {
  return (probe.conn.localAddr as Deno.NetAddr).port;
}

suite.test("serveConcurrent has all 5 slow requests in flight at once", async (t) => {
  const { h, listener, serving } = await startGated(t, "serveConcurrent");
  const clients: Probe[] = [];
  for (let i = 1; i <= 5; i++) clients.push(await t.connect(listener.addr, `client ${i}`));
  await waitWhileServing(
    t,
    "5 clients connected; each handler waits at a gate the grader keeps shut",
    () => h.state.active === 5,
    {
      serving,
      servingName: "serveConcurrent",
      expected: "5 handlers running at the same time",
      actual: () =>
        `at most ${h.state.maxActive} ran at once (${h.state.started.length} started, ` +
        `accept() called ${listener.acceptCalls} times)`,
      note: "start each handler WITHOUT awaiting it and go straight back to accept(). With " +
        "`await handler(conn)` in the loop, each client waits for the one before: that is the " +
        "serial server, and N slow clients take N times as long",
    },
  );
  h.openAll();
  for (const client of clients) {
    await client.expect("done\n", { step: `read the handler's reply on ${client.label}` });
    await client.expectEnd({
      step: `your server closes ${client.label} after its handler`,
      note: "close each connection once its handler has settled (a finally)",
    });
  }
  listener.close();
  await t.step("serveConcurrent returns after the listener is closed", () => serving.promise);
});

suite.test("serveSerial runs one handler at a time and accepts the next client only after it", async (t) => {
  const { h, listener, serving } = await startGated(t, "serveSerial");
  const clients: Probe[] = [];
  for (const label of ["A", "B", "C"]) clients.push(await t.connect(listener.addr, label));
  for (const [i, client] of clients.entries()) {
    await waitWhileServing(
      t,
      `the handler for ${client.label} starts`,
      () => h.state.started.length > i,
      {
        serving,
        servingName: "serveSerial",
        expected: `the handler for ${client.label} to start`,
        actual: () => `${h.state.started.length} handler(s) started`,
        note: "after a handler settles, close its connection and accept the next",
      },
    );
    t.check(listener.acceptsWhileBusy === 0 && h.state.maxActive === 1, {
      step: `while the handler for ${client.label} runs`,
      expected: "no accept() call and no other handler until it has finished",
      actual: `accept() was called ${listener.acceptsWhileBusy} time(s) while a handler ran; ` +
        `at most ${h.state.maxActive} handler(s) ran at once`,
      note: "the serial server awaits each handler before it accepts again: " +
        "`await handler(conn)` inside the loop",
    });
    t.check(h.state.started[i] === portOf(client), {
      step: `while the handler for ${client.label} runs`,
      expected: `it serves ${client.label} (port ${portOf(client)}), the oldest waiting client`,
      actual: `the handler got the connection from port ${h.state.started[i]}`,
    });
    h.state.gates[i].resolve();
    await client.expect("done\n", { step: `read the handler's reply on ${client.label}` });
    await client.expectEnd({
      step: `your server closes ${client.label} after its handler`,
      note: "close each connection once its handler has settled (a finally)",
    });
  }
  listener.close();
  await t.step("serveSerial returns after the listener is closed", () => serving.promise);
  t.expectEqual(h.state.maxActive, 1, "the most handlers that ran at once");
});

suite.test("serveConcurrent, once its listener is closed, returns only after its running handlers", async (t) => {
  const { h, listener, serving } = await startGated(t, "serveConcurrent");
  const a = await t.connect(listener.addr, "A");
  const b = await t.connect(listener.addr, "B");
  await waitWhileServing(
    t,
    "A and B connected; their handlers wait at the grader's gates",
    () => h.state.active === 2,
    {
      serving,
      servingName: "serveConcurrent",
      expected: "2 handlers running at the same time",
      actual: () => `at most ${h.state.maxActive} ran at once`,
    },
  );
  listener.close();
  await waitWhileServing(
    t,
    "the grader closed the listener: your pending accept() fails",
    () => listener.acceptRejected,
    {
      expected: "your server's pending accept() to reject",
      actual: () => `accept() was called ${listener.acceptCalls} times and none rejected yet`,
    },
  );
  for (let i = 0; i < 10; i++) await nextTurn();
  t.check(!serving.settled, {
    step: "10 event-loop turns after the listener closed, with 2 handlers still running",
    expected: "serveConcurrent still waiting for its 2 handlers",
    actual: serving.failed ? `it had failed: ${serving.error}` : "it had already returned",
    note: "keep each running handler's promise (a Set) and, when the accept loop ends, " +
      "`await Promise.all(running)` — otherwise the caller thinks the server is done while " +
      "connections are still open",
  });
  h.openAll();
  for (const client of [a, b]) {
    await client.expect("done\n", { step: `read the handler's reply on ${client.label}` });
    await client.expectEnd({ step: `your server closes ${client.label} after its handler` });
  }
  await t.step("serveConcurrent returns once both handlers have finished", () => serving.promise);
});

for (const kind of ["serveSerial", "serveConcurrent"] as const) {
  suite.test(`${kind} closes the connection of a handler that throws, and keeps serving`, async (t) => {
    const { h, listener, serving } = await startGated(t, kind, {
      step: `${kind}(listener, a handler that throws for the first client)`,
      failFirst: true,
    });
    const a = await t.connect(listener.addr, "A");
    await a.expectEnd({
      step: "the handler threw for A: your server closes A",
      note: "close the connection in a finally, so a failing handler does not leave it open",
    });
    const b = await t.connect(listener.addr, "B");
    await waitWhileServing(
      t,
      "B connected: its handler starts",
      () => h.state.started.length === 2,
      {
        serving,
        servingName: kind,
        expected: "a handler for B",
        actual: () => `${h.state.started.length} handler(s) started`,
        note: "catch the handler's error (log it) and go on accepting: one failing client must " +
          "not stop the server",
      },
    );
    h.openAll();
    await b.expect("done\n", { step: "read the handler's reply on B" });
    await b.expectEnd({ step: "your server closes B after its handler" });
    listener.close();
    await t.step(`${kind} returns after the listener is closed`, () => serving.promise, {
      note: "catch each handler's error inside the server: it must not end the loop or escape",
    });
  });
}

for (const kind of ["serveSerial", "serveConcurrent"] as const) {
  suite.test(`${kind} logs an accept() that fails and goes on accepting`, async (t) => {
    const records = await captureLogs(t);
    const { h, listener, serving } = await startGated(t, kind, {
      step: `${kind}(listener, handler), where the first accept() fails once (EMFILE: out of ` +
        "descriptors): your server goes on",
      failAccepts: 1,
    });
    const note = "only a closed listener ends the loop (isListenerClosed(error)); any other " +
      "accept() error is logged and the loop goes on: a server out of descriptors for a moment " +
      "must not stop for good";
    await waitWhileServing(
      t,
      "the first accept() failed once (EMFILE): your server goes on and calls accept() again",
      () => listener.acceptCalls >= 2,
      {
        serving,
        servingName: kind,
        expected: "a second accept() call",
        actual: () => `accept() was called ${listener.acceptCalls} time(s)`,
        note,
      },
    );
    const a = await t.connect(listener.addr, "A");
    await waitWhileServing(
      t,
      "A connected: its handler starts",
      () => h.state.started.length === 1,
      {
        serving,
        servingName: kind,
        expected: "a handler for A",
        actual: () => `${h.state.started.length} handler(s) started`,
        note,
      },
    );
    h.openAll();
    await a.expect("done\n", { step: "read the handler's reply on A" });
    await a.expectEnd({ step: "your server closes A after its handler" });
    const warnings = records.filter((r) => ["warning", "error", "fatal"].includes(r.level));
    t.check(warnings.length >= 1, {
      step: "your server's log after its first accept() failed (EMFILE)",
      expected: "a warning (or an error) about the failed accept()",
      actual: records.length === 0
        ? "nothing was logged"
        : `only ${records.map((r) => `${r.level}: ${logText(r)}`).join("; ")}`,
      note: "an accept() that fails is a server in trouble (out of descriptors): log it as a " +
        "warning before accepting again, or nobody ever learns why clients waited. " + note,
    });
    listener.close();
    await t.step(`${kind} returns after the listener is closed`, () => serving.promise);
  });
}
