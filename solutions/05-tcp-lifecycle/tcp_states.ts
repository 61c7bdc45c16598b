/**
 * Lesson 05 — the TCP lifecycle and its states.
 *
 * You build a small observer of the kernel's TCP sockets: it reads Linux's
 * socket tables `/proc/net/tcp` and `/proc/net/tcp6` and tells which sockets
 * sit on a port, in which of the eleven TCP states. `deno task lesson 5` then
 * uses YOUR observer to watch real connections open, half-close and close.
 * Last, a client that half-closes. Read docs/05-tcp-lifecycle.md first.
 *
 * @module
 */
import { readProcNet } from "workbook";

/**
 * The eleven states a Linux TCP socket can be in, named as the kernel names
 * them (include/net/tcp_states.h) without the `TCP_` prefix.
 */
export type TcpStateName =
  | "ESTABLISHED"
  | "SYN_SENT"
  | "SYN_RECV"
  | "FIN_WAIT1"
  | "FIN_WAIT2"
  | "TIME_WAIT"
  | "CLOSE"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "LISTEN"
  | "CLOSING";

/** `IPv4` for lines of /proc/net/tcp, `IPv6` for lines of /proc/net/tcp6. */
export type TcpFamily = "IPv4" | "IPv6";

/** One end of a connection: an address as people write it, and a port number. */
export interface SocketAddress {
  /** `127.0.0.1`, `::1`, `::ffff:127.0.0.1`, `0.0.0.0`, `::` … */
  address: string;
  port: number;
}

/** One line of /proc/net/tcp or /proc/net/tcp6: one socket, as the kernel sees it. */
export interface TcpSocket {
  family: TcpFamily;
  /** This socket's own address and port. */
  local: SocketAddress;
  /** The peer's address and port; `0.0.0.0:0` (or `:::0`) for a listener. */
  remote: SocketAddress;
  state: TcpStateName;
}

/**
 * The name of a kernel state code, the `st` column of /proc/net/tcp
 * (two hex digits there: `0A` is 10). The codes run from 1 to 11:
 *
 * 01 ESTABLISHED, 02 SYN_SENT, 03 SYN_RECV, 04 FIN_WAIT1, 05 FIN_WAIT2,
 * 06 TIME_WAIT, 07 CLOSE, 08 CLOSE_WAIT, 09 LAST_ACK, 0A LISTEN, 0B CLOSING.
 *
 * Any other number: throw a RangeError that names it.
 *
 * @example `stateName(0x0A) === "LISTEN"`
 */
export function stateName(code: number): TcpStateName {
  // #region solution stateName
  // Index = kernel code; slot 0 is unused because the kernel counts from 1.
  const names: (TcpStateName | undefined)[] = [
    undefined,
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
  ];
  const name = Number.isInteger(code) ? names[code] : undefined;
  if (!name) throw new RangeError(`no TCP state has code ${code} (0x${code.toString(16)})`);
  return name;
  // #endregion solution
}

/**
 * Writes a 16-byte IPv6 address (network order) in its short text form,
 * the one RFC 5952 asks for and `ss`, Deno and browsers print:
 * - eight groups of 16 bits in lower-case hex, leading zeros dropped:
 *   `2001:db8:0:1:1:1:1:1`;
 * - the LONGEST run of two or more all-zero groups becomes `::` (the first
 *   such run when two are equally long); a lone zero group stays `0`:
 *   `2001:db8::1:0:0:1`, `::1`, `::`, `fe80::1`;
 * - an IPv4-mapped address (80 zero bits, then `ffff`) ends in dotted IPv4:
 *   `::ffff:127.0.0.1`.
 */
export function formatIPv6(bytes: Uint8Array): string {
  // #region solution formatIPv6
  if (bytes.length !== 16) {
    throw new RangeError(`an IPv6 address has 16 bytes, not ${bytes.length}`);
  }
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  if (mapped) return `::ffff:${bytes.subarray(12).join(".")}`;
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // Find the longest run of zero groups (the first one wins a tie).
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8;) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) [bestStart, bestLength] = [start, end - start];
    start = end;
  }
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(":");
  if (bestLength < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
  // #endregion solution
}

/**
 * Decodes one address column of /proc/net/tcp or /proc/net/tcp6,
 * `ADDRESS:PORT` in hex:
 * - an IPv4 address is 8 hex digits: the 32-bit address printed as a number
 *   in the machine's byte order, which is little-endian on x86-64 and ARM64,
 *   so the bytes come out reversed: `0100007F` is 127.0.0.1;
 * - an IPv6 address is 32 hex digits: four 32-bit words, each printed the
 *   same way (reverse the bytes within each word, not the whole address);
 *   write it with {@linkcode formatIPv6};
 * - the port is 4 hex digits, in the usual order: `1F90` is 8080.
 *
 * Anything else (no colon, other lengths, non-hex digits): throw an Error.
 *
 * @example `decodeAddress("0100007F:1F90")` → `{ address: "127.0.0.1", port: 8080 }`
 */
export function decodeAddress(text: string): SocketAddress {
  // #region solution decodeAddress
  const match = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(text);
  if (!match) throw new Error(`not an address column of /proc/net/tcp: ${JSON.stringify(text)}`);
  const [, hexAddress, hexPort] = match;
  // Undo the kernel's printf("%08X") of each 32-bit word read in host (little-endian) order.
  const bytes = new Uint8Array(hexAddress.length / 2);
  const view = new DataView(bytes.buffer);
  for (let word = 0; word < hexAddress.length / 8; word++) {
    const value = Number.parseInt(hexAddress.slice(8 * word, 8 * word + 8), 16);
    view.setUint32(4 * word, value, true);
  }
  const address = bytes.length === 4 ? bytes.join(".") : formatIPv6(bytes);
  return { address, port: Number.parseInt(hexPort, 16) };
  // #endregion solution
}

/**
 * Parses the whole text of /proc/net/tcp (`family` "IPv4") or
 * /proc/net/tcp6 ("IPv6") into one {@linkcode TcpSocket} per socket line.
 *
 * The first line is a header (it starts with `sl`); skip it, and skip empty
 * lines. A socket line looks like
 *
 * ```
 *    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 …
 * ```
 *
 * fields separated by runs of spaces: the slot number `0:`, the local
 * address, the remote address, the state code in hex, then columns this
 * lesson does not need. Slot numbers are padded to 4 characters, so the
 * columns do not sit at fixed positions once there are 10000 sockets.
 * A line whose addresses do not fit `family`: throw an Error.
 */
export function parseProcNetTcp(text: string, family: TcpFamily): TcpSocket[] {
  // #region solution parseProcNetTcp
  const sockets: TcpSocket[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] === "" || fields[0] === "sl") continue;
    if (fields.length < 4) throw new Error(`short line in /proc/net/tcp: ${JSON.stringify(line)}`);
    const addressDigits = fields[1].indexOf(":");
    if (addressDigits !== (family === "IPv4" ? 8 : 32)) {
      throw new Error(`${family} table with a ${addressDigits}-digit address: ${line.trim()}`);
    }
    sockets.push({
      family,
      local: decodeAddress(fields[1]),
      remote: decodeAddress(fields[2]),
      state: stateName(Number.parseInt(fields[3], 16)),
    });
  }
  return sockets;
  // #endregion solution
}

/**
 * Every TCP socket of this machine (IPv4 and IPv6) whose local OR remote
 * port is `port`: the listener, both ends of each connection on it, and
 * the TIME_WAIT leftovers.
 *
 * Read the tables with `readProcNet("tcp")` and `readProcNet("tcp6")` from
 * "workbook": Deno refuses plain reads under /proc unless given --allow-all,
 * so the toolkit asks `cat` (the lesson may run `cat`, nothing else).
 */
export async function socketsOnPort(port: number): Promise<TcpSocket[]> {
  // #region solution socketsOnPort
  const [tcp, tcp6] = await Promise.all([readProcNet("tcp"), readProcNet("tcp6")]);
  return [...parseProcNetTcp(tcp, "IPv4"), ...parseProcNetTcp(tcp6, "IPv6")].filter(
    (socket) => socket.local.port === port || socket.remote.port === port,
  );
  // #endregion solution
}

/** Which end of a connection to watch: the socket whose LOCAL port is `port`. */
export interface SocketEnd {
  /** The socket's own (local) port. */
  port: number;
  /** If given, only the socket whose peer has this port (one connection among many). */
  peerPort?: number;
}

/** Options of {@linkcode waitForState}. */
export interface WaitForStateOptions {
  /** Give up after this many milliseconds (default 2000). */
  timeoutMs?: number;
  /** Pause between two looks, in milliseconds (default 20). */
  intervalMs?: number;
  /** Where to look (default {@linkcode socketsOnPort}); the grader passes a scripted one. */
  observe?: (port: number) => Promise<TcpSocket[]>;
}

/** Thrown by {@linkcode waitForState} when the state did not appear in time. */
export class StateTimeoutError extends Error {
  override name = "StateTimeoutError";
  constructor(
    readonly end: SocketEnd,
    readonly state: TcpStateName,
    /** The states the watched end was in at the last look (empty: no such socket). */
    readonly seen: TcpStateName[],
    readonly timeoutMs: number,
  ) {
    super(
      `the socket on port ${end.port}${
        end.peerPort === undefined ? "" : ` (peer port ${end.peerPort})`
      } did not reach ${state} within ${timeoutMs} ms; last seen: ${
        seen.length ? seen.join(", ") : "no such socket"
      }`,
    );
  }
}

/**
 * Waits until the socket at `end` is in `state` and returns it.
 *
 * The kernel changes states on its own time (an ACK arrives, a timer fires),
 * so one look is not enough: look with `options.observe` (default
 * {@linkcode socketsOnPort}), and while the state is not there, pause
 * `intervalMs` and look again, until `timeoutMs` have passed; then throw a
 * {@linkcode StateTimeoutError} with the states the end was in at the last
 * look. Only sockets whose LOCAL port is `end.port` (and whose remote port is
 * `end.peerPort`, if given) count: the other end of a connection shows up on
 * the same port as its remote port, in a different state.
 */
export async function waitForState(
  end: SocketEnd,
  state: TcpStateName,
  options: WaitForStateOptions = {},
): Promise<TcpSocket> {
  // #region solution waitForState
  const { timeoutMs = 2000, intervalMs = 20, observe = socketsOnPort } = options;
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const mine = (await observe(end.port)).filter((socket) =>
      socket.local.port === end.port &&
      (end.peerPort === undefined || socket.remote.port === end.peerPort)
    );
    const found = mine.find((socket) => socket.state === state);
    if (found) return found;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new StateTimeoutError(end, state, mine.map((socket) => socket.state), timeoutMs);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, left)));
  }
  // #endregion solution
}

/**
 * A client for servers that answer only once the request is complete, i.e.
 * once they read end-of-stream: connect to `address`, write all of
 * `request`, then HALF-close (`conn.closeWrite()`: "I am done sending",
 * a FIN) and keep reading until the server closes; return every byte of the
 * reply. Close the connection at the end.
 *
 * `conn.close()` instead of `closeWrite()` would end both directions: the
 * server's reply would hit a closed socket and be answered with a reset.
 */
export async function requestWithHalfClose(
  address: { hostname: string; port: number },
  request: string | Uint8Array,
): Promise<Uint8Array> {
  // #region solution requestWithHalfClose
  const bytes = typeof request === "string" ? new TextEncoder().encode(request) : request;
  const conn = await Deno.connect({ hostname: address.hostname, port: address.port });
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += await conn.write(bytes.subarray(offset));
    }
    await conn.closeWrite();
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const reply = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      reply.set(chunk, at);
      at += chunk.length;
    }
    return reply;
  } finally {
    conn.close();
  }
  // #endregion solution
}
