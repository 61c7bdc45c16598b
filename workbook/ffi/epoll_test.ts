import assert from "node:assert/strict";
import {
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  epollCreate,
  epollCtl,
  EPOLLET,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  epollWait,
  epollWaitAsync,
  pipe,
  poll,
  POLLIN,
  read,
  send,
  SHUT_WR,
  shutdown,
  socketPair,
  write,
} from "./libc.ts";
import { EPOLL_DATA_OFFSET, EPOLL_EVENT_SIZE } from "./epoll.ts";
import { sysAsync } from "./sys.ts";
import { connectedPair, ffiTest, isErrno, WAIT_MS } from "./testing.ts";

const encoder = new TextEncoder();

Deno.test("struct epoll_event layout for this CPU", () => {
  assert.equal(EPOLL_EVENT_SIZE, Deno.build.arch === "x86_64" ? 12 : 16);
  assert.equal(EPOLL_DATA_OFFSET, Deno.build.arch === "x86_64" ? 4 : 8);
  assert.equal(EPOLLET >>> 0, 2 ** 31);
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
  assert.throws(() => epollWait(epfd, 0, 0), RangeError);
});

ffiTest("epoll edge-triggered: a second wait without draining reports nothing", (fds) => {
  const { client, server } = connectedPair(fds, { nonBlocking: true });
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN | EPOLLET);

  send(client, encoder.encode("one"));
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLIN }]);
  assert.deepEqual(epollWait(epfd, 8, 0), []); // no new edge...
  assert.deepEqual(poll([{ fd: server, events: POLLIN }], 0), [POLLIN]); // ...though data waits

  send(client, encoder.encode("two"));
  assert.deepEqual(epollWait(epfd, 8, WAIT_MS), [{ fd: server, events: EPOLLIN }]);
  const buffer = new Uint8Array(16);
  let total = 0;
  for (let n = read(server, buffer); n !== null; n = read(server, buffer)) total += n;
  assert.equal(total, 6); // drained until EAGAIN, as ET requires
  assert.deepEqual(epollWait(epfd, 8, 0), []);
});

ffiTest("epoll EPOLLRDHUP, custom data and EPOLL_CTL_DEL", (fds) => {
  const { client, server } = connectedPair(fds);
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN | EPOLLRDHUP);
  shutdown(client, SHUT_WR);
  const deadline = performance.now() + WAIT_MS;
  let events = 0;
  while (!(events & EPOLLRDHUP) && performance.now() < deadline) {
    events = epollWait(epfd, 8, WAIT_MS)[0]?.events ?? 0;
  }
  assert.equal(events, EPOLLIN | EPOLLRDHUP);

  epollCtl(epfd, EPOLL_CTL_DEL, server);
  assert.deepEqual(epollWait(epfd, 8, 0), []);
  assert.throws(() => epollCtl(epfd, EPOLL_CTL_DEL, server), isErrno("ENOENT"));

  const [readEnd, writeEnd] = pipe();
  fds.track(readEnd);
  fds.track(writeEnd);
  const data = 2 ** 40 + 7; // the u64 data field holds any tag, not just an fd
  epollCtl(epfd, EPOLL_CTL_ADD, readEnd, EPOLLIN, data);
  write(writeEnd, new Uint8Array([1]));
  assert.deepEqual(epollWait(epfd, 1, WAIT_MS), [{ fd: data, events: EPOLLIN }]);
  assert.throws(() => epollCtl(epfd, EPOLL_CTL_MOD, readEnd, EPOLLIN, -1), RangeError);
});

ffiTest("epollWaitAsync keeps the event loop running; errors get a real errno", async (fds) => {
  const { client, server } = connectedPair(fds);
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, server, EPOLLIN);
  const both = [epollWaitAsync(epfd, 4, WAIT_MS), epollWaitAsync(epfd, 4, WAIT_MS)];
  // A timer can only fire if the JS thread is free while the waits run.
  await new Promise((resolve) => setTimeout(resolve, 0));
  send(client, encoder.encode("y"));
  for (const ready of await Promise.all(both)) {
    assert.deepEqual(ready, [{ fd: server, events: EPOLLIN }]);
  }

  // -1 from the worker thread is re-asked synchronously to learn errno.
  await assert.rejects(epollWaitAsync(server, 4, WAIT_MS), isErrno("EINVAL"));
  await assert.rejects(epollWaitAsync(999_999, 4, WAIT_MS), isErrno("EBADF"));
});

ffiTest("sysAsync.epoll_wait: the raw threaded call returns a bare count", async (fds) => {
  const [left, right] = socketPair();
  fds.track(left);
  fds.track(right);
  const epfd = fds.track(epollCreate());
  epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT);
  const events = new Uint8Array(EPOLL_EVENT_SIZE * 2);
  assert.equal(await sysAsync.epoll_wait(epfd, events, 2, WAIT_MS), 1);
  assert.equal(new DataView(events.buffer).getInt32(EPOLL_DATA_OFFSET, true), left);
  assert.equal(await sysAsync.epoll_wait(-1, events, 2, 0), -1); // failed; errno not knowable
});
