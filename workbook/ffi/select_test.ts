import assert from "node:assert/strict";
import {
  F_DUPFD_CLOEXEC,
  FD_SET_BYTES,
  FD_SETSIZE,
  FdSet,
  getrlimit,
  poll,
  POLLIN,
  select,
  send,
  sys,
} from "./libc.ts";
import { connectedPair, ffiTest, WAIT_MS } from "./testing.ts";

Deno.test("FdSet: fd n is bit n%64 of 64-bit word n/64, refused past FD_SETSIZE", () => {
  const set = new FdSet();
  assert.equal(set.bytes.byteLength, FD_SET_BYTES);
  for (const fd of [0, 63, 64, 1023]) set.add(fd);
  // Little-endian puts bit n%64 of word n/64 at byte n/8, bit n%8.
  assert.equal(set.bytes[0], 0x01);
  assert.equal(set.bytes[7], 0x80);
  assert.equal(set.bytes[8], 0x01);
  assert.equal(set.bytes[127], 0x80);
  assert.ok(set.has(63) && !set.has(62));
  assert.throws(() => set.add(FD_SETSIZE), /FD_SETSIZE/);
  assert.throws(() => set.has(-1), RangeError);
  set.clear();
  assert.ok(set.bytes.every((byte) => byte === 0));
});

ffiTest("select: readiness, and refusal of fds >= FD_SETSIZE", (fds) => {
  const { client, server } = connectedPair(fds);
  assert.deepEqual(select([server], [client], 0), { readable: [], writable: [client] });
  send(client, new TextEncoder().encode("ping"));
  assert.deepEqual(select([server, client], [], WAIT_MS), { readable: [server], writable: [] });

  const started = performance.now();
  assert.deepEqual(select([client], [], 30), { readable: [], writable: [] });
  assert.ok(performance.now() - started >= 25, "a select with nothing ready waits its timeout");

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
