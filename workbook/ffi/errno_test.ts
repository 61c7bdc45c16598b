import assert from "node:assert/strict";
import { strerror } from "./errno.ts";
import {
  close,
  EAGAIN,
  ECONNRESET,
  EPIPE,
  ErrnoError,
  errnoName,
  EWOULDBLOCK,
  sys,
} from "./libc.ts";
import { ffiTest } from "./testing.ts";

Deno.test("errno names follow Linux numbering", () => {
  assert.equal(EWOULDBLOCK, EAGAIN);
  assert.equal(errnoName(EAGAIN), "EAGAIN");
  assert.equal(errnoName(ECONNRESET), "ECONNRESET");
  assert.equal(errnoName(115), "EINPROGRESS");
  assert.equal(errnoName(-3), "ERRNO_-3");
});

ffiTest("errors: sys returns { value, errno }, wrappers throw ErrnoError", () => {
  assert.equal(strerror(EPIPE), "Broken pipe");
  assert.deepEqual(sys.close(-1), { value: -1, errno: 9 });
  assert.throws(() => close(-1), (error: unknown) => {
    assert.ok(error instanceof ErrnoError);
    assert.equal(error.name, "ErrnoError");
    assert.equal(error.code, "EBADF");
    assert.equal(error.errno, 9);
    assert.equal(error.syscall, "close");
    assert.match(error.message, /Bad file descriptor/);
    return true;
  });
});
