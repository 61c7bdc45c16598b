import assert from "node:assert/strict";
import {
  F_DUPFD,
  isFdOpen,
  isNonBlocking,
  O_NONBLOCK,
  pipe,
  read,
  setNonBlocking,
  SOCK_NONBLOCK,
  socketPair,
  sys,
  write,
} from "./libc.ts";
import { AF_INET } from "./sockaddr.ts";
import { SOCK_STREAM } from "./socket.ts";
import { ffiTest } from "./testing.ts";

ffiTest("pipe and socketpair, with O_NONBLOCK helpers", (fds) => {
  assert.equal(O_NONBLOCK, 0o4000);
  assert.equal(SOCK_NONBLOCK, O_NONBLOCK);

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
  assert.equal(read(left, buffer), null);
  setNonBlocking(left, false);
  assert.ok(!isNonBlocking(left));

  const raw = sys.socket(AF_INET, SOCK_STREAM, 0);
  fds.track(raw.value);
  assert.ok(raw.value >= 0);
  assert.equal(raw.errno, 0); // errno is only read (and reported) for -1
});

ffiTest("isFdOpen follows close, and F_DUPFD copies stay open on their own", (fds) => {
  const [readEnd, writeEnd] = pipe();
  fds.track(writeEnd);
  const copy = fds.track(sys.fcntl(readEnd, F_DUPFD, 100).value);
  assert.ok(copy >= 100);
  fds.close(readEnd);
  assert.ok(!isFdOpen(readEnd));
  assert.ok(isFdOpen(copy));
  write(writeEnd, new Uint8Array([1]));
  assert.equal(read(copy, new Uint8Array(4)), 1);
  assert.ok(!isFdOpen(-1));
});
