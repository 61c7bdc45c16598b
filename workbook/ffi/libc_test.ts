/**
 * Proves the libc bindings over real loopback sockets.
 *
 * Run: `deno test --allow-ffi --allow-net=127.0.0.1 workbook/ffi/`
 *
 * Synchronisation is always "wait for readiness with poll/epoll and a
 * timeout", never a fixed sleep. Ports come from port 0 + getsockname.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  accept,
  acceptAsync,
  AF_INET,
  bind,
  close,
  closeLibc,
  connect,
  connectTcp,
  createTcpSocket,
  decodeSockaddr,
  decodeSockaddrIn,
  EAGAIN,
  ECONNRESET,
  encodeSockaddr,
  encodeSockaddrIn,
  EPIPE,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  epollCreate,
  epollCtl,
  EPOLLET,
  EPOLLIN,
  EPOLLONESHOT,
  EPOLLOUT,
  EPOLLRDHUP,
  epollWait,
  epollWaitAsync,
  ErrnoError,
  errnoName,
  EWOULDBLOCK,
  F_DUPFD_CLOEXEC,
  FD_SETSIZE,
  FdSet,
  ffiAvailable,
  getpeername,
  getrlimit,
  getsockname,
  isNonBlocking,
  libc,
  listenTcp,
  MSG_PEEK,
  O_NONBLOCK,
  pipe,
  poll,
  pollAsync,
  POLLFD_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLRDHUP,
  raiseFileLimit,
  read,
  readAsync,
  recv,
  select,
  send,
  sendAsync,
  setLinger,
  setNonBlocking,
  setrlimit,
  SHUT_WR,
  shutdown,
  SIGACTION_SIZE,
  SIGPIPE,
  sigpipeDisposition,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socketError,
  socketPair,
  strerror,
  sys,
  sysAsync,
  write,
} from "./libc.ts";

// Opened here, outside any test: with sanitizeResources on, Deno 2.9 counts a
// DynamicLibrary first opened inside a test as a leak.
const ffi = ffiAvailable();
if (!ffi.ok) console.warn(`libc FFI tests skipped: ${ffi.reason}`);

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Upper bound for every readiness wait; only reached when something is broken. */
const WAIT_MS = 5000;

/** Descriptors opened by one test, closed when it ends (pass or fail). */
class FdScope {
  readonly #open = new Set<number>();

  track(fd: number): number {
    this.#open.add(fd);
    return fd;
  }

  close(fd: number): void {
    this.#open.delete(fd);
    close(fd);
  }

  closeAll(): void {
    for (const fd of this.#open) sys.close(fd);
    this.#open.clear();
  }
}

function ffiTest(
  name: string,
  fn: (fds: FdScope) => void | Promise<void>,
  options: { sanitizeResources?: boolean } = {},
): void {
  Deno.test({
    name,
    ignore: !ffi.ok,
    ...options,
    async fn() {
      const fds = new FdScope();
      try {
        await fn(fds);
      } finally {
        fds.closeAll();
      }
    },
  });
}

/** Waits (sync poll) until `fd` reports one of `events`; fails after WAIT_MS. */
function waitFor(fd: number, events: number): number {
  const [revents] = poll([{ fd, events }], WAIT_MS);
  assert.notEqual(revents, 0, `fd ${fd} not ready for ${events} within ${WAIT_MS} ms`);
  return revents;
}

/** A loopback listener plus one connection: `client` (connected) and `server` (accepted). */
function connectedPair(fds: FdScope, serverOptions: { nonBlocking?: boolean } = {}) {
  const listener = listenTcp();
  fds.track(listener.fd);
  const client = fds.track(connectTcp("127.0.0.1", listener.port));
  waitFor(listener.fd, POLLIN);
  const server = fds.track(accept(listener.fd, serverOptions)!);
  return { listener, client, server };
}

function isErrno(code: string) {
  return (error: unknown) => error instanceof ErrnoError && error.code === code;
}

ffiTest("layout: constants and struct sizes for this CPU", () => {
  assert.equal(EPOLL_EVENT_SIZE, Deno.build.arch === "x86_64" ? 12 : 16);
  assert.equal(EPOLL_DATA_OFFSET, Deno.build.arch === "x86_64" ? 4 : 8);
  assert.equal(EWOULDBLOCK, EAGAIN);
  assert.equal(O_NONBLOCK, 0o4000);
  assert.equal(SOCK_NONBLOCK, O_NONBLOCK);
  assert.equal(EPOLLET >>> 0, 2 ** 31);

  const bytes = encodeSockaddrIn("127.0.0.1", 8080);
  assert.deepEqual([...bytes], [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeSockaddrIn(bytes), { address: "127.0.0.1", port: 8080 });
  assert.throws(() => encodeSockaddrIn("localhost", 1), TypeError);
  assert.throws(() => encodeSockaddrIn("1.2.3.256", 1), TypeError);
  assert.throws(() => encodeSockaddrIn("127.0.0.1", 65536), RangeError);

  assert.equal(errnoName(EAGAIN), "EAGAIN");
  assert.equal(errnoName(ECONNRESET), "ECONNRESET");
  assert.equal(strerror(EPIPE), "Broken pipe");

  // fd n is bit n%64 of 64-bit word n/64; little-endian puts it at byte n/8, bit n%8.
  const set = new FdSet();
  for (const fd of [0, 63, 64, 1023]) set.add(fd);
  assert.equal(set.bytes[0], 0x01);
  assert.equal(set.bytes[7], 0x80);
  assert.equal(set.bytes[8], 0x01);
  assert.equal(set.bytes[127], 0x80);
  assert.ok(set.has(63) && !set.has(62));
  assert.throws(() => set.add(FD_SETSIZE), /FD_SETSIZE/);
});

ffiTest("errors: sys returns { value, errno }, wrappers throw ErrnoError", () => {
  assert.deepEqual(sys.close(-1), { value: -1, errno: 9 });
  assert.throws(() => close(-1), (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.code, "EBADF");
    assert.equal(error.errno, 9);
    assert.equal(error.syscall, "close");
    assert.match(error.message, /Bad file descriptor/);
    return true;
  });
});

ffiTest("accept on an empty non-blocking listener: EAGAIN", (fds) => {
  const listener = listenTcp({ nonBlocking: true });
  fds.track(listener.fd);
  assert.ok(isNonBlocking(listener.fd));
  assert.equal(accept(listener.fd), null);
  const raw = sys.accept4(listener.fd, null, null, 0);
  assert.deepEqual(raw, { value: -1, errno: EAGAIN });
});

ffiTest("connect + accept + send/recv round trip", (fds) => {
  const listener = listenTcp({ nonBlocking: true });
  fds.track(listener.fd);
  assert.equal(listener.address, "127.0.0.1");
  assert.ok(listener.port > 0);
  assert.deepEqual(getsockname(listener.fd), { address: "127.0.0.1", port: listener.port });

  const client = fds.track(connectTcp("127.0.0.1", listener.port));
  assert.ok(!isNonBlocking(client));
  waitFor(listener.fd, POLLIN);
  const server = fds.track(accept(listener.fd)!);
  // Linux: accepted sockets do not inherit the listener's O_NONBLOCK.
  assert.ok(!isNonBlocking(server));
  assert.deepEqual(getpeername(server), getsockname(client));
  assert.equal(getpeername(client).port, listener.port);

  assert.equal(send(client, encoder.encode("hello")), 5);
  const buffer = new Uint8Array(32);
  waitFor(server, POLLIN);
  const n = read(server, buffer.subarray(10))!; // lands at offset 10
  assert.equal(decoder.decode(buffer.subarray(10, 10 + n)), "hello");

  assert.equal(write(server, encoder.encode("world!")), 6);
  waitFor(client, POLLIN);
  assert.equal(recv(client, buffer, MSG_PEEK), 6);
  assert.equal(recv(client, buffer), 6);
  assert.equal(decoder.decode(buffer.subarray(0, 6)), "world!");

  const second = fds.track(connectTcp("127.0.0.1", listener.port));
  waitFor(listener.fd, POLLIN);
  const accepted = fds.track(accept(listener.fd, { nonBlocking: true })!);
  assert.ok(isNonBlocking(accepted));
  assert.equal(read(accepted, buffer), null); // nothing sent yet: EAGAIN → null
  fds.close(second);
});

ffiTest("non-blocking connect: EINPROGRESS, then POLLOUT and SO_ERROR 0", (fds) => {
  const listener = listenTcp();
  fds.track(listener.fd);
  const fd = fds.track(createTcpSocket({ nonBlocking: true }));
  assert.equal(connect(fd, "127.0.0.1", listener.port), "inProgress");
  assert.ok(waitFor(fd, POLLOUT) & POLLOUT);
  assert.equal(socketError(fd), 0);
  setNonBlocking(fd, false);
  assert.ok(!isNonBlocking(fd));
});

ffiTest("ECONNREFUSED and EADDRINUSE", (fds) => {
  // A bound but not listening socket owns the port, so nobody else can listen there.
  const holder = fds.track(createTcpSocket());
  bind(holder, "127.0.0.1", 0);
  const { port } = getsockname(holder);
  assert.throws(() => connectTcp("127.0.0.1", port), isErrno("ECONNREFUSED"));

  const listener = listenTcp();
  fds.track(listener.fd);
  assert.throws(() => listenTcp({ port: listener.port }), isErrno("EADDRINUSE"));
});

ffiTest("EOF: read returns 0 after peer close and after a half-close", (fds) => {
  const { client, server } = connectedPair(fds);
  const buffer = new Uint8Array(16);

  shutdown(client, SHUT_WR); // FIN: server reads EOF, but may still answer
  waitFor(server, POLLIN);
  assert.equal(read(server, buffer), 0);
  assert.equal(send(server, encoder.encode("bye")), 3);
  waitFor(client, POLLIN);
  assert.equal(read(client, buffer), 3);

  fds.close(server);
  waitFor(client, POLLIN);
  assert.equal(read(client, buffer), 0);
  assert.equal(read(client, buffer), 0); // EOF stays EOF
});

ffiTest("EPIPE on send after peer reset, even with SIGPIPE at its default action", (fds) => {
  const { client, server } = connectedPair(fds);
  setLinger(server, 0);
  fds.close(server); // abortive close: RST instead of FIN
  const revents = waitFor(client, POLLIN);
  assert.ok(revents & POLLHUP, "a reset connection reports POLLHUP");

  const before = sigpipeDisposition();
  const saved = new Uint8Array(SIGACTION_SIZE);
  const defaultAction = new Uint8Array(SIGACTION_SIZE); // zeros: SIG_DFL, empty mask, no flags
  assert.equal(sys.sigaction(SIGPIPE, defaultAction, saved).value, 0);
  const codes: string[] = [];
  try {
    // If MSG_NOSIGNAL did not work, SIGPIPE would now kill the test process.
    assert.equal(sigpipeDisposition(), "default");
    for (let i = 0; i < 3; i++) {
      try {
        send(client, encoder.encode("anyone there?"));
      } catch (error) {
        if (!(error instanceof ErrnoError)) throw error;
        codes.push(error.code);
      }
    }
  } finally {
    assert.equal(sys.sigaction(SIGPIPE, saved, null).value, 0);
  }
  assert.equal(sigpipeDisposition(), before);
  // The first error reports the RST (ECONNRESET, clearing it); the rest are EPIPE.
  assert.ok(codes.length >= 2, `expected errors, got ${codes}`);
  assert.ok(codes.every((code) => code === "ECONNRESET" || code === "EPIPE"), `${codes}`);
  assert.equal(codes.at(-1), "EPIPE");

  if (before === "ignored") {
    // Deno ignores SIGPIPE, so even a plain write(2) just fails.
    assert.throws(() => write(client, encoder.encode("x")), isErrno("EPIPE"));
  }
});

ffiTest("poll: POLLIN, POLLOUT, timeout, POLLNVAL, POLLRDHUP and POLLHUP", (fds) => {
  const { client, server } = connectedPair(fds);
  assert.deepEqual(
    poll([{ fd: server, events: POLLIN }, { fd: client, events: POLLOUT }], 0),
    [0, POLLOUT],
  );

  const started = performance.now();
  assert.deepEqual(poll([{ fd: server, events: POLLIN }], 30), [0]);
  assert.ok(performance.now() - started >= 25, "a poll with nothing ready waits its timeout");

  send(client, encoder.encode("x"));
  assert.equal(waitFor(server, POLLIN), POLLIN);
  // Negative fds are skipped; fds that are not open report POLLNVAL.
  assert.deepEqual(
    poll([{ fd: -1, events: POLLIN }, { fd: 999_999, events: POLLIN }], 0),
    [0, POLLNVAL],
  );

  assert.equal(read(server, new Uint8Array(4)), 1);
  fds.close(client);
  waitFor(server, POLLRDHUP); // only requested bits (plus ERR/HUP/NVAL) are reported
  assert.deepEqual(poll([{ fd: server, events: POLLIN | POLLRDHUP }], 0), [POLLIN | POLLRDHUP]);
  shutdown(server, SHUT_WR); // both directions closed now
  assert.ok(poll([{ fd: server, events: POLLIN }], 0)[0] & POLLHUP);
});

ffiTest("select: readiness, and refusal of fds >= FD_SETSIZE", (fds) => {
  const { client, server } = connectedPair(fds);
  assert.deepEqual(select([server], [client], 0), { readable: [], writable: [client] });
  send(client, encoder.encode("ping"));
  assert.deepEqual(select([server, client], [], WAIT_MS), { readable: [server], writable: [] });

  assert.equal(FD_SETSIZE, 1024);
  assert.throws(() => select([FD_SETSIZE], [], 0), /FD_SETSIZE=1024/);
  assert.throws(() => select([], [-1], 0), RangeError);

  if (getrlimit().soft > FD_SETSIZE + 8) {
    // A real descriptor above 1023: select refuses it, poll handles it.
    const high = fds.track(sys.fcntl(server, F_DUPFD_CLOEXEC, FD_SETSIZE).value);
    assert.ok(high >= FD_SETSIZE, `dup gave ${high}`);
    assert.throws(() => select([high], [], 0), RangeError);
    assert.equal(poll([{ fd: high, events: POLLIN }], 0)[0], POLLIN);
  }
});

ffiTest("epoll level-triggered: reported until drained", (fds) => {
  const { client, server } = connectedPair(fds);
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN);
  assert.deepEqual(epollWait(epfd, 8, 0), []);

  send(client, encoder.encode("abc"));
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLIN }]);
  assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: server, events: EPOLLIN }]); // still unread
  assert.equal(read(server, new Uint8Array(16)), 3);
  assert.deepEqual(epollWait(epfd, 8, 0), []);

  epollCtl(epfd, EPOLL_CTL_MOD, server, EPOLLIN | EPOLLOUT);
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLOUT }]);
});

ffiTest("epoll edge-triggered: a second wait without draining reports nothing", (fds) => {
  const { client, server } = connectedPair(fds, { nonBlocking: true });
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN | EPOLLET);

  send(client, encoder.encode("one"));
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLIN }]);
  assert.deepEqual(epollWait(epfd, 8, 0), []); // no new edge...
  const buffer = new Uint8Array(16);
  assert.equal(recv(server, buffer, MSG_PEEK), 3); // ...though the data is still there

  send(client, encoder.encode("two"));
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLIN }]);
  let total = 0;
  for (let n = read(server, buffer); n !== null; n = read(server, buffer)) total += n;
  assert.equal(total, 6); // drained until EAGAIN, as ET requires
  assert.deepEqual(epollWait(epfd, 8, 0), []);
});

ffiTest("epoll oneshot, EPOLLRDHUP, custom data and EPOLL_CTL_DEL", (fds) => {
  const { client, server } = connectedPair(fds);
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN | EPOLLONESHOT);
  send(client, encoder.encode("a"));
  assert.equal(epollWait(epfd, 8, WAIT_MS).length, 1);
  assert.deepEqual(epollWait(epfd, 8, 0), []); // disarmed after one report
  epollCtl(epfd, EPOLL_CTL_MOD, server, EPOLLIN | EPOLLONESHOT); // re-arm
  assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: server, events: EPOLLIN }]);

  epollCtl(epfd, EPOLL_CTL_MOD, server, EPOLLIN | EPOLLRDHUP);
  shutdown(client, SHUT_WR);
  const deadline = performance.now() + WAIT_MS;
  let events = 0;
  while (!(events & EPOLLRDHUP) && performance.now() < deadline) {
    events = epollWait(epfd, 8, WAIT_MS)[0]?.events ?? 0;
  }
  assert.equal(events, EPOLLIN | EPOLLRDHUP);

  epollCtl(epfd, EPOLL_CTL_DEL, server);
  assert.deepEqual(epollWait(epfd, 8, 0), []);

  const [readEnd, writeEnd] = pipe();
  fds.track(readEnd);
  fds.track(writeEnd);
  const data = 2 ** 40 + 7; // the u64 data field holds any tag, not just an fd
  epollCtl(epfd, EPOLL_CTL_ADD, readEnd, EPOLLIN, data);
  write(writeEnd, new Uint8Array([1]));
  assert.deepEqual(epollWait(epfd, 1, WAIT_MS), [{ fd: data, events: EPOLLIN }]);
});

ffiTest("threaded waits keep the event loop running; errors get a real errno", async (fds) => {
  const { client, server } = connectedPair(fds);
  const waiting = pollAsync([{ fd: server, events: POLLIN }], WAIT_MS);
  // A timer can only fire if the JS thread is free while the poll waits.
  await new Promise((resolve) => setTimeout(resolve, 0));
  send(client, encoder.encode("x"));
  assert.deepEqual(await waiting, [POLLIN]);
  assert.equal(read(server, new Uint8Array(4)), 1);

  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN);
  const both = [epollWaitAsync(epfd, 4, WAIT_MS), epollWaitAsync(epfd, 4, WAIT_MS)];
  send(client, encoder.encode("y"));
  for (const ready of await Promise.all(both)) {
    assert.deepEqual(ready, [{ fd: server, events: EPOLLIN }]);
  }

  // -1 from the worker thread is re-asked synchronously to learn errno.
  await assert.rejects(epollWaitAsync(server, 4, WAIT_MS), isErrno("EINVAL"));
  await assert.rejects(epollWaitAsync(999_999, 4, WAIT_MS), isErrno("EBADF"));
  assert.deepEqual(await pollAsync([{ fd: 999_999, events: POLLIN }], WAIT_MS), [POLLNVAL]);
});

ffiTest("sysAsync: raw threaded calls return bare values", async (fds) => {
  const [left, right] = socketPair();
  fds.track(left);
  fds.track(right);
  const buffer = new Uint8Array(8);
  const reading = sysAsync.read(right, buffer); // a blocking read, on a worker thread
  write(left, new Uint8Array([1, 2, 3]));
  assert.equal(await reading, 3);
  assert.equal(await sysAsync.read(-1, buffer), -1); // failed; errno is not knowable here

  const listener = listenTcp();
  fds.track(listener.fd);
  const accepting = sysAsync.accept4(listener.fd, SOCK_NONBLOCK | SOCK_CLOEXEC);
  fds.track(connectTcp("127.0.0.1", listener.port));
  const accepted = fds.track(await accepting);
  assert.ok(accepted >= 0 && isNonBlocking(accepted));

  const pollfd = new Uint8Array(POLLFD_SIZE);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, left, true);
  view.setInt16(4, POLLOUT, true);
  assert.equal(await sysAsync.poll(pollfd, 1, WAIT_MS), 1);
  assert.equal(view.getInt16(6, true), POLLOUT);

  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT);
  const events = new Uint8Array(EPOLL_EVENT_SIZE * 2);
  assert.equal(await sysAsync.epoll_wait(epfd, events, 2, WAIT_MS), 1);
  assert.equal(new DataView(events.buffer).getInt32(EPOLL_DATA_OFFSET, true), left);
});

ffiTest("getrlimit/setrlimit RLIMIT_NOFILE, and EMFILE at the limit", (fds) => {
  const before = getrlimit();
  assert.ok(before.soft > 0 && before.soft <= before.hard, JSON.stringify(before));
  try {
    const raised = raiseFileLimit();
    assert.equal(raised.soft, before.hard === Infinity ? before.soft : before.hard);

    // Put the limit just above the lowest free fd and run into it.
    const [probe] = pipe();
    sys.close(probe);
    setrlimit({ soft: probe + 4, hard: before.hard });
    assert.equal(getrlimit().soft, probe + 4);
    let error: unknown;
    try {
      for (let i = 0; i < 8; i++) for (const fd of pipe()) fds.track(fd);
    } catch (caught) {
      error = caught;
    }
    assert.ok(isErrno("EMFILE")(error), `expected EMFILE, got ${error}`);
  } finally {
    setrlimit(before);
  }
  assert.deepEqual(getrlimit(), before);
});

ffiTest("pipe and socketpair, with O_NONBLOCK helpers", (fds) => {
  const [readEnd, writeEnd] = pipe({ nonBlocking: true });
  fds.track(readEnd);
  fds.track(writeEnd);
  assert.ok(isNonBlocking(readEnd) && isNonBlocking(writeEnd));
  const buffer = new Uint8Array(8);
  assert.equal(read(readEnd, buffer), null);
  assert.equal(write(writeEnd, new Uint8Array([9, 8])), 2);
  assert.equal(read(readEnd, buffer), 2);
  assert.deepEqual([...buffer.subarray(0, 2)], [9, 8]);

  const [left, right] = socketPair();
  fds.track(left);
  fds.track(right);
  assert.ok(!isNonBlocking(left));
  setNonBlocking(left, true);
  assert.ok(isNonBlocking(left));
  assert.equal(recv(left, buffer), null);
  setNonBlocking(left, false);
  assert.ok(!isNonBlocking(left));

  const raw = sys.socket(AF_INET, SOCK_STREAM, 0);
  fds.track(raw.value);
  assert.ok(raw.value >= 0);
  assert.equal(raw.errno, 0); // errno is only read (and reported) for -1
});

ffiTest("a Deno client talks to an FFI listener", async (fds) => {
  const listener = listenTcp();
  fds.track(listener.fd);
  const [fd, conn] = await Promise.all([
    acceptAsync(listener.fd, { timeoutMs: WAIT_MS }),
    Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
  ]);
  fds.track(fd);
  let connOpen = true;
  try {
    assert.equal(getpeername(fd).port, conn.localAddr.port);
    const buffer = new Uint8Array(16);
    const reading = readAsync(fd, buffer, { timeoutMs: WAIT_MS });
    await conn.write(encoder.encode("ping"));
    const n = await reading;
    assert.equal(decoder.decode(buffer.subarray(0, n)), "ping");

    assert.equal(await sendAsync(fd, encoder.encode("pong"), { timeoutMs: WAIT_MS }), 4);
    let reply = "";
    while (reply.length < 4) {
      const got = await conn.read(buffer);
      if (got === null) break;
      reply += decoder.decode(buffer.subarray(0, got));
    }
    assert.equal(reply, "pong");

    conn.close();
    connOpen = false;
    assert.equal(await readAsync(fd, buffer, { timeoutMs: WAIT_MS }), 0);
  } finally {
    if (connOpen) conn.close();
  }
});

ffiTest("acceptAsync gives up on timeout and on abort", async (fds) => {
  const listener = listenTcp();
  fds.track(listener.fd);
  await assert.rejects(
    acceptAsync(listener.fd, { timeoutMs: 20 }),
    (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
  );
  const controller = new AbortController();
  const accepting = acceptAsync(listener.fd, { signal: controller.signal });
  controller.abort(new Error("server stopping"));
  await assert.rejects(accepting, /server stopping/);
});

// Last: closing the handle opened before the tests would be reported as
// "loaded before the test started, but unloaded during the test".
ffiTest("closeLibc releases the library and libc() reopens it", () => {
  closeLibc();
  assert.ok(ffiAvailable().ok);
  assert.ok(typeof libc().socket === "function");
  closeLibc();
}, { sanitizeResources: false });

Deno.test("IPv6 socket addresses encode and decode, compressed as RFC 5952 prints them", () => {
  for (const text of ["::1", "::", "fe80::1", "2001:db8::8:800:200c:417a", "1:2:3:4:5:6:7:8"]) {
    assert.deepEqual(decodeSockaddr(encodeSockaddr(text, 443)), { address: text, port: 443 });
  }
  assert.deepEqual(decodeSockaddr(encodeSockaddr("[::1]", 80)), { address: "::1", port: 80 });
  assert.equal(encodeSockaddr("::1", 0).length, 28);
  assert.equal(encodeSockaddr("127.0.0.1", 0).length, 16);
  assert.throws(() => encodeSockaddr("1::2::3", 0), TypeError);
  assert.throws(() => encodeSockaddr("12345::", 0), TypeError);
});

Deno.test({
  name: "listenTcp and connectTcp speak IPv6 on ::1",
  ignore: !ffiAvailable().ok,
  fn() {
    let listener;
    try {
      listener = listenTcp({ address: "::1" });
    } catch {
      closeLibc();
      return; // no IPv6 loopback on this machine
    }
    try {
      const client = connectTcp("::1", listener.port, { timeoutMs: 1000 });
      assert.equal(listener.address, "::1");
      assert.equal(getpeername(client).address, "::1");
      close(client);
    } finally {
      close(listener.fd);
      closeLibc();
    }
  },
});

Deno.test("bind refuses a non-loopback address unless the program was started with --public", () => {
  if (!ffiAvailable().ok) return;
  try {
    assert.throws(() => listenTcp({ address: "0.0.0.0" }), Deno.errors.NotCapable);
  } finally {
    closeLibc();
  }
});
