/**
 * Socket addresses as C lays them out: `struct sockaddr_in` (IPv4) and
 * `struct sockaddr_in6` (IPv6), from and to `{ address, port }`. Pure byte
 * work: nothing here calls libc.
 *
 * @module
 */
import { withoutBrackets } from "../toolkit/program.ts";

/**
 * IPv4: the address family of `struct sockaddr_in`, and `createTcpSocket`'s default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AF_INET, close, createTcpSocket, getsockname } from "workbook/libc";
 *
 * const fd = createTcpSocket({ family: AF_INET });
 * assert.deepEqual(getsockname(fd), { address: "0.0.0.0", port: 0 }); // not bound yet
 * close(fd);
 * ```
 */
export const AF_INET = 2;

/**
 * IPv6: the address family of `struct sockaddr_in6`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AF_INET6, close, createTcpSocket, getsockname } from "workbook/libc";
 *
 * const fd = createTcpSocket({ family: AF_INET6 });
 * assert.deepEqual(getsockname(fd), { address: "::", port: 0 }); // not bound yet
 * close(fd);
 * ```
 */
export const AF_INET6 = 10;

/** `sizeof(struct sockaddr_in)`: family, port, 4-byte address, 8 zero bytes. */
export const SOCKADDR_IN_SIZE = 16;
/** `sizeof(struct sockaddr_in6)`: family, port, flow info, 16-byte address, scope id. */
export const SOCKADDR_IN6_SIZE = 28;

/**
 * An IP address and port, e.g. `{ address: "127.0.0.1", port: 40231 }` or
 * `{ address: "::1", port: 40231 }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, listenTcp, type SocketAddress } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const { address, port }: SocketAddress = listener;
 * assert.equal(address, "127.0.0.1");
 * assert.ok(port > 0);
 * close(listener.fd);
 * ```
 */
export interface SocketAddress {
  /** Dotted-quad IPv4 or textual IPv6 address (no brackets). */
  address: string;
  /** Port number, 0–65535. */
  port: number;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be a whole number from 0 to 65535, got ${port}`);
  }
}

function parseIPv4(address: string): number[] {
  const parts = address.split(".");
  const octets = parts.map((part) => /^\d{1,3}$/.test(part) ? Number(part) : NaN);
  if (octets.length !== 4 || octets.some((octet) => !(octet <= 255))) {
    throw new TypeError(`expected a dotted IPv4 address like "127.0.0.1", got "${address}"`);
  }
  return octets;
}

/**
 * Builds a `struct sockaddr_in`: family (native byte order), port and address
 * in network byte order (big-endian), then 8 zero bytes.
 *
 * @param into reuse this 16-byte buffer instead of allocating one
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSockaddrIn } from "./sockaddr.ts";
 *
 * const bytes = encodeSockaddrIn("127.0.0.1", 8080); // 8080 = 0x1f90
 * assert.deepEqual([...bytes.subarray(0, 8)], [2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
 * ```
 */
export function encodeSockaddrIn(
  address: string,
  port: number,
  into: Uint8Array = new Uint8Array(SOCKADDR_IN_SIZE),
): Uint8Array {
  checkPort(port);
  const octets = parseIPv4(address);
  into.fill(0, 0, SOCKADDR_IN_SIZE);
  const view = new DataView(into.buffer, into.byteOffset, SOCKADDR_IN_SIZE);
  view.setUint16(0, AF_INET, true); // sin_family: host order (little-endian here)
  view.setUint16(2, port, false); // sin_port: network order
  into.set(octets, 4); // sin_addr: network order is just the dotted order
  return into;
}

/**
 * Reads a `struct sockaddr_in` back into `{ address, port }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSockaddrIn, encodeSockaddrIn } from "./sockaddr.ts";
 *
 * const decoded = decodeSockaddrIn(encodeSockaddrIn("10.0.0.7", 443));
 * assert.deepEqual(decoded, { address: "10.0.0.7", port: 443 });
 * ```
 */
export function decodeSockaddrIn(bytes: Uint8Array): SocketAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  if (family !== AF_INET) {
    throw new TypeError(`not an IPv4 address (sa_family ${family}, expected AF_INET=${AF_INET})`);
  }
  return { address: bytes.subarray(4, 8).join("."), port: view.getUint16(2, false) };
}

/**
 * True for an IPv6 address in text (it has a colon); brackets are allowed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIPv6 } from "./sockaddr.ts";
 *
 * assert.ok(isIPv6("[::1]") && !isIPv6("127.0.0.1"));
 * ```
 */
export function isIPv6(address: string): boolean {
  return address.includes(":");
}

/**
 * The address family a socket for `address` needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AF_INET6, familyOf } from "./sockaddr.ts";
 *
 * assert.equal(familyOf("::1"), AF_INET6);
 * ```
 */
export function familyOf(address: string): typeof AF_INET | typeof AF_INET6 {
  return isIPv6(address) ? AF_INET6 : AF_INET;
}

function parseIPv6(text: string): Uint8Array {
  const address = withoutBrackets(text);
  const fail = () => new TypeError(`expected an IPv6 address like "::1", got "${text}"`);
  const halves = address.split("::");
  if (halves.length > 2) throw fail();
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) throw fail();
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) throw fail();
    const value = parseInt(group, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  });
  return bytes;
}

function formatIPv6(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.length).join(":")}`;
}

/**
 * Builds the socket address for `address` — a `struct sockaddr_in` for IPv4,
 * a `struct sockaddr_in6` for IPv6 (`localhost` is 127.0.0.1) — and returns
 * its bytes (a view of `into`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSockaddr } from "./sockaddr.ts";
 *
 * assert.equal(encodeSockaddr("::1", 8080).length, 28);
 * assert.equal(encodeSockaddr("localhost", 8080).length, 16);
 * ```
 */
export function encodeSockaddr(
  address: string,
  port: number,
  into: Uint8Array = new Uint8Array(SOCKADDR_IN6_SIZE),
): Uint8Array {
  // libc has no resolver here (no getaddrinfo binding); the one name lesson programs use:
  if (address === "localhost") address = "127.0.0.1";
  if (!isIPv6(address)) return encodeSockaddrIn(address, port, into).subarray(0, SOCKADDR_IN_SIZE);
  checkPort(port);
  const octets = parseIPv6(address);
  into.fill(0, 0, SOCKADDR_IN6_SIZE);
  const view = new DataView(into.buffer, into.byteOffset, SOCKADDR_IN6_SIZE);
  view.setUint16(0, AF_INET6, true); // sin6_family: host order
  view.setUint16(2, port, false); // sin6_port: network order
  into.set(octets, 8); // sin6_addr, after the 4-byte flow info
  return into.subarray(0, SOCKADDR_IN6_SIZE);
}

/**
 * Reads a `struct sockaddr_in` or `struct sockaddr_in6` back into `{ address, port }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSockaddr, encodeSockaddr } from "./sockaddr.ts";
 *
 * assert.deepEqual(decodeSockaddr(encodeSockaddr("::1", 443)), { address: "::1", port: 443 });
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): SocketAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(0, true) !== AF_INET6) return decodeSockaddrIn(bytes);
  return { address: formatIPv6(bytes.subarray(8, 24)), port: view.getUint16(2, false) };
}
