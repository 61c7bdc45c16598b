import assert from "node:assert/strict";
import { getrlimit, pipe, raiseFileLimit, setrlimit, sys } from "./libc.ts";
import { ffiTest, isErrno } from "./testing.ts";

ffiTest("getrlimit/setrlimit RLIMIT_NOFILE, and EMFILE at the limit", (fds) => {
  const before = getrlimit();
  assert.ok(before.soft > 0 && before.soft <= before.hard, JSON.stringify(before));
  try {
    const raised = raiseFileLimit();
    assert.equal(raised.soft, before.hard === Infinity ? before.soft : before.hard);

    // Put the limit just above the lowest free fd and run into it.
    const [probe, probeWriteEnd] = pipe();
    sys.close(probe);
    sys.close(probeWriteEnd);
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
