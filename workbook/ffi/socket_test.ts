import assert from "node:assert/strict";
import {
  accept,
  bind,
  close,
  connectTcp,
  createTcpSocket,
  EAGAIN,
  ErrnoError,
  getpeername,
  getsockname,
  isNonBlocking,
  listenTcp,
  pollAsync,
  POLLHUP,
  POLLIN,
  POLLOUT,
  read,
  send,
  setLinger,
  setNonBlocking,
  SHUT_WR,
  shutdown,
  sys,
  write,
} from "./libc.ts";
import { connect, socketError } from "./socket.ts";
import { connectedPair, ffi, ffiTest, isErrno, WAIT_MS, waitFor } from "./testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

ffiTest("accept on an empty non-blocking listener: EAGAIN", (fds) => {
  const listener = listenTcp({ nonBlocking: true });
  fds.track(listener.fd);
  assert.ok(isNonBlocking(listener.fd));
  assert.equal(accept(listener.fd), null);
  const raw = sys.accept4(listener.fd, null, null, 0);
  assert.deepEqual(raw, { value: -1, errno: EAGAIN });
});

ffiTest("connect + accept + send/read round trip", (fds) => {
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
  assert.equal(read(client, buffer), 6);
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

// sigaction(2) is bound here only: the test restores SIGPIPE's default action
// (terminate) to prove that send's MSG_NOSIGNAL keeps the process alive.
const SIGPIPE = 13;
const SIGACTION_SIZE = 152; // sizeof(struct sigaction) in glibc on x86_64 and aarch64
const signals = ffi.ok
  ? Deno.dlopen("libc.so.6", {
    sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  }).symbols
  : null;

/** SIGPIPE's action: sa_handler is the first field, SIG_DFL = 0, SIG_IGN = 1. */
function sigpipeHandler(): bigint {
  const current = new Uint8Array(SIGACTION_SIZE);
  assert.equal(signals!.sigaction(SIGPIPE, null, current), 0);
  return new DataView(current.buffer).getBigUint64(0, true);
}

ffiTest("EPIPE on send after peer reset, even with SIGPIPE at its default action", (fds) => {
  const { client, server } = connectedPair(fds);
  setLinger(server, 0);
  fds.close(server); // abortive close: RST instead of FIN
  const revents = waitFor(client, POLLIN);
  assert.ok(revents & POLLHUP, "a reset connection reports POLLHUP");

  const before = sigpipeHandler();
  const saved = new Uint8Array(SIGACTION_SIZE);
  const defaultAction = new Uint8Array(SIGACTION_SIZE); // zeros: SIG_DFL, empty mask, no flags
  assert.equal(signals!.sigaction(SIGPIPE, defaultAction, saved), 0);
  const codes: string[] = [];
  try {
    // If MSG_NOSIGNAL did not work, SIGPIPE would now kill the test process.
    assert.equal(sigpipeHandler(), 0n);
    for (let i = 0; i < 3; i++) {
      try {
        send(client, encoder.encode("anyone there?"));
      } catch (error) {
        if (!(error instanceof ErrnoError)) throw error;
        codes.push(error.code);
      }
    }
  } finally {
    assert.equal(signals!.sigaction(SIGPIPE, saved, null), 0);
  }
  assert.equal(sigpipeHandler(), before);
  // The first error reports the RST (ECONNRESET, clearing it); the rest are EPIPE.
  assert.ok(codes.length >= 2, `expected errors, got ${codes}`);
  assert.ok(codes.every((code) => code === "ECONNRESET" || code === "EPIPE"), `${codes}`);
  assert.equal(codes.at(-1), "EPIPE");

  if (before === 1n) {
    // Deno ignores SIGPIPE, so even a plain write(2) just fails.
    assert.throws(() => write(client, encoder.encode("x")), isErrno("EPIPE"));
  }
});

ffiTest(
  "a Deno client talks to an FFI listener; the FFI side waits on a worker thread",
  async (fds) => {
    const listener = listenTcp({ nonBlocking: true });
    fds.track(listener.fd);
    const [ready, conn] = await Promise.all([
      pollAsync([{ fd: listener.fd, events: POLLIN }], WAIT_MS),
      Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
    ]);
    try {
      assert.deepEqual(ready, [POLLIN]);
      const fd = fds.track(accept(listener.fd, { nonBlocking: true })!);
      assert.equal(getpeername(fd).port, conn.localAddr.port);

      const buffer = new Uint8Array(16);
      const readable = pollAsync([{ fd, events: POLLIN }], WAIT_MS);
      await conn.write(encoder.encode("ping"));
      assert.deepEqual(await readable, [POLLIN]);
      const n = read(fd, buffer)!;
      assert.equal(decoder.decode(buffer.subarray(0, n)), "ping");

      assert.equal(send(fd, encoder.encode("pong")), 4);
      let reply = "";
      while (reply.length < 4) {
        const got = await conn.read(buffer);
        if (got === null) break;
        reply += decoder.decode(buffer.subarray(0, got));
      }
      assert.equal(reply, "pong");
    } finally {
      conn.close();
    }
  },
);

Deno.test({
  name: "listenTcp and connectTcp speak IPv6 on ::1",
  ignore: !ffi.ok,
  fn() {
    let listener;
    try {
      listener = listenTcp({ address: "::1" });
    } catch {
      return; // no IPv6 loopback on this machine
    }
    try {
      const client = connectTcp("::1", listener.port, { timeoutMs: 1000 });
      assert.equal(listener.address, "::1");
      assert.equal(getpeername(client).address, "::1");
      close(client);
    } finally {
      close(listener.fd);
    }
  },
});

Deno.test({
  name: "bind refuses a non-loopback address unless the program was started with --public",
  ignore: !ffi.ok,
  fn() {
    assert.throws(() => listenTcp({ address: "0.0.0.0" }), Deno.errors.NotCapable);
  },
});
