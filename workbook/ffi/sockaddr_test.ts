import assert from "node:assert/strict";
import {
  decodeSockaddr,
  decodeSockaddrIn,
  encodeSockaddr,
  encodeSockaddrIn,
  familyOf,
} from "./sockaddr.ts";
import { AF_INET, AF_INET6 } from "./libc.ts";

Deno.test("IPv4 socket addresses: family in host order, port and address in network order", () => {
  const bytes = encodeSockaddrIn("127.0.0.1", 8080);
  assert.deepEqual([...bytes], [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeSockaddrIn(bytes), { address: "127.0.0.1", port: 8080 });
  assert.throws(() => encodeSockaddrIn("localhost", 1), TypeError);
  assert.throws(() => encodeSockaddrIn("1.2.3.256", 1), TypeError);
  assert.throws(() => encodeSockaddrIn("127.0.0.1", 65536), RangeError);
  assert.throws(() => decodeSockaddrIn(encodeSockaddr("::1", 1)), TypeError);

  const into = new Uint8Array(28).fill(0xff);
  assert.equal(encodeSockaddr("localhost", 80, into).length, 16);
  assert.deepEqual(decodeSockaddr(into), { address: "127.0.0.1", port: 80 });
});

Deno.test("IPv6 socket addresses encode and decode, compressed as RFC 5952 prints them", () => {
  for (const text of ["::1", "::", "fe80::1", "2001:db8::8:800:200c:417a", "1:2:3:4:5:6:7:8"]) {
    assert.deepEqual(decodeSockaddr(encodeSockaddr(text, 443)), { address: text, port: 443 });
  }
  assert.deepEqual(decodeSockaddr(encodeSockaddr("[::1]", 80)), { address: "::1", port: 80 });
  assert.equal(encodeSockaddr("::1", 0).length, 28);
  assert.equal(encodeSockaddr("127.0.0.1", 0).length, 16);
  assert.throws(() => encodeSockaddr("1::2::3", 0), TypeError);
  assert.throws(() => encodeSockaddr("12345::", 0), TypeError);
  assert.throws(() => encodeSockaddr("::1", -1), RangeError);
  assert.equal(familyOf("[::1]"), AF_INET6);
  assert.equal(familyOf("10.0.0.1"), AF_INET);
});
