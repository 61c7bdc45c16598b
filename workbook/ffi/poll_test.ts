import assert from "node:assert/strict";
import {
  poll,
  pollAsync,
  POLLFD_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  read,
  send,
  SHUT_WR,
  shutdown,
  socketPair,
} from "./libc.ts";
import { sysAsync } from "./sys.ts";
import { connectedPair, ffiTest, WAIT_MS, waitFor } from "./testing.ts";

const encoder = new TextEncoder();

ffiTest("poll: POLLIN, POLLOUT, timeout, POLLNVAL and POLLHUP", (fds) => {
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
  assert.ok(waitFor(server, POLLIN) & POLLIN); // EOF is readable
  shutdown(server, SHUT_WR); // both directions closed now
  assert.ok(poll([{ fd: server, events: POLLIN }], 0)[0] & POLLHUP);
  assert.deepEqual(poll([], 0), []);
});

ffiTest("pollAsync keeps the event loop running; errors get a real errno", async (fds) => {
  const { client, server } = connectedPair(fds);
  const waiting = pollAsync([{ fd: server, events: POLLIN }], WAIT_MS);
  // A timer can only fire if the JS thread is free while the poll waits.
  await new Promise((resolve) => setTimeout(resolve, 0));
  send(client, encoder.encode("x"));
  assert.deepEqual(await waiting, [POLLIN]);
  assert.equal(read(server, new Uint8Array(4)), 1);

  assert.deepEqual(await pollAsync([{ fd: server, events: POLLIN }], 10), [0]); // timed out
  assert.deepEqual(await pollAsync([{ fd: 999_999, events: POLLIN }], WAIT_MS), [POLLNVAL]);
});

ffiTest("sysAsync.poll: the raw threaded call returns a bare count", async (fds) => {
  const [left, right] = socketPair();
  fds.track(left);
  fds.track(right);
  const pollfd = new Uint8Array(POLLFD_SIZE);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, left, true);
  view.setInt16(4, POLLOUT, true);
  assert.equal(await sysAsync.poll(pollfd, 1, WAIT_MS), 1);
  assert.equal(view.getInt16(6, true), POLLOUT);
});
