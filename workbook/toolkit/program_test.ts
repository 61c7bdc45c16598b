import assert from "node:assert/strict";
import { isLoopbackHost, parseProgramArgs, publicBindAllowed } from "./program.ts";

Deno.test("isLoopbackHost: localhost, 127.0.0.0/8 and ::1, with or without brackets", () => {
  for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]"]) {
    assert.ok(isLoopbackHost(host), host);
  }
  for (const host of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1", "1::1"]) {
    assert.ok(!isLoopbackHost(host), host);
  }
});

Deno.test("parseProgramArgs: loopback hosts pass, brackets are dropped, no --public needed", () => {
  assert.equal(parseProgramArgs(["--host", "[::1]"], { port: 0 }).host, "::1");
  assert.equal(parseProgramArgs(["--host", "localhost"], { port: 0 }).host, "localhost");
  const args = parseProgramArgs([], { port: 9000 });
  assert.deepEqual([args.host, args.port, args.public], ["127.0.0.1", 9000, false]);
  assert.equal(publicBindAllowed(), false);
});
