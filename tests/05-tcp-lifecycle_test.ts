/**
 * Grading suite of lesson 05 — the TCP lifecycle and its states.
 * Run it with `deno task lesson 5`.
 *
 * First the learner's parser meets known samples of /proc/net/tcp and
 * /proc/net/tcp6 (taken on x86-64, so little-endian). Then the suite opens
 * real connections on 127.0.0.1 and ::1, walks them through the handshake,
 * half-close and close, and asks the LEARNER's `socketsOnPort` what the
 * kernel shows at each point. The kernel changes states on its own time, so
 * every expectation is polled to a deadline. Only sockets with this test's
 * exact ports and addresses count: the machine has many others.
 */
import {
  equalBytes,
  type Grader,
  isGradeFailure,
  lessonSuite,
  nextTurn,
  openDescriptors,
  type Probe,
  runDeadline,
  showBytes,
  showDifference,
  type SplitMode,
  STEP_MS,
} from "../workbook/harness/mod.ts";
import { isDeepStrictEqual } from "node:util";
import net from "node:net";
import type * as Lesson from "../solutions/05-tcp-lifecycle/tcp_states.ts";
import type {
  SocketAddress,
  TcpSocket,
  TcpStateName,
} from "../solutions/05-tcp-lifecycle/tcp_states.ts";

const suite = lessonSuite("05");
type Solution = typeof Lesson;
const load = (t: Grader) => t.load<Solution>();

/**
 * How long a state may take to show up: loopback takes well under 10 ms, and the deadline counts
 * only the time this process could run (a loaded machine stretches it). The observer is asked at
 * least MIN_LOOKS times however long each look takes.
 */
const STATE_DEADLINE_MS = STEP_MS;
const MIN_LOOKS = 3;
/** Pause between two looks at the socket tables. */
const LOOK_INTERVAL_MS = 15;
/**
 * Budget of a check that watches live sockets: each look reads and parses the whole tables,
 * which on a busy machine hold thousands of TIME_WAIT lines (a look then takes a good part of a
 * second under load).
 */
const LIVE = { timeoutMs: 20_000 };

// ---------------------------------------------------------------- samples

/** The eleven states in kernel order: code = index + 1. */
const STATES: TcpStateName[] = [
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

const TAIL =
  "00000000:00000000 00:00000000 00000000  1000        0 52110 1 0000000000000000 100 0 0 10 0";
const TW_TAIL = "00000000:00000000 03:00001336 00000000     0        0 0 3 0000000000000000";

/**
 * A /proc/net/tcp as the kernel prints it: header, slots padded to 4
 * characters (wider from 10000 on), lines padded with trailing spaces,
 * TIME_WAIT lines with fewer columns.
 */
const SAMPLE_TCP = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  `   0: 0100007F:1F90 00000000:0000 0A ${TAIL}                     `,
  `   1: 0100007F:1F90 0100007F:D431 01 ${TAIL}`,
  `   2: 0F02000A:0016 0202000A:C350 08 ${TAIL}   `,
  ` 999: 0100007F:D431 0100007F:1F90 06 ${TW_TAIL}                                      `,
  `10000: 0101A8C0:0050 6401A8C0:E1F2 05 ${TAIL}`,
  "",
].join("\n");

const SAMPLE_TCP_SOCKETS: TcpSocket[] = [
  tcp4("127.0.0.1", 8080, "0.0.0.0", 0, "LISTEN"),
  tcp4("127.0.0.1", 8080, "127.0.0.1", 54321, "ESTABLISHED"),
  tcp4("10.0.2.15", 22, "10.0.2.2", 50000, "CLOSE_WAIT"),
  tcp4("127.0.0.1", 54321, "127.0.0.1", 8080, "TIME_WAIT"),
  tcp4("192.168.1.1", 80, "192.168.1.100", 57842, "FIN_WAIT2"),
];

const ZERO6 = "00000000000000000000000000000000";
const LOOPBACK6 = "00000000000000000000000001000000";
const MAPPED_LOOPBACK = "0000000000000000FFFF00000100007F";

/** A /proc/net/tcp6 sample, with a dual-stack listener's IPv4-mapped connection. */
const SAMPLE_TCP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  `   0: ${LOOPBACK6}:1F90 ${ZERO6}:0000 0A ${TAIL}`,
  `   1: ${ZERO6}:0016 ${ZERO6}:0000 0A ${TAIL}`,
  `   2: ${MAPPED_LOOPBACK}:0016 ${MAPPED_LOOPBACK}:B8F4 01 ${TAIL}`,
  `   3: 000080FE00000000FF005450563412FE:0016 000080FE000000000000000001000000:D6D8 09 ${TAIL}`,
  `   4: B80D0120000000000000010001000000:01BB ${LOOPBACK6}:8AE2 0B ${TAIL}`,
  `   5: ${LOOPBACK6}:8AE3 ${LOOPBACK6}:1F91 02 ${TAIL}`,
  "",
].join("\n");

const SAMPLE_TCP6_SOCKETS: TcpSocket[] = [
  tcp6("::1", 8080, "::", 0, "LISTEN"),
  tcp6("::", 22, "::", 0, "LISTEN"),
  tcp6("::ffff:127.0.0.1", 22, "::ffff:127.0.0.1", 47348, "ESTABLISHED"),
  tcp6("fe80::5054:ff:fe12:3456", 22, "fe80::1", 55000, "LAST_ACK"),
  tcp6("2001:db8::1:0:0:1", 443, "::1", 35554, "CLOSING"),
  tcp6("::1", 35555, "::1", 8081, "SYN_SENT"),
];

function tcp4(
  local: string,
  localPort: number,
  remote: string,
  remotePort: number,
  state: TcpStateName,
): TcpSocket {
  return {
    family: "IPv4",
    local: { address: local, port: localPort },
    remote: { address: remote, port: remotePort },
    state,
  };
}

function tcp6(
  local: string,
  localPort: number,
  remote: string,
  remotePort: number,
  state: TcpStateName,
): TcpSocket {
  return { ...tcp4(local, localPort, remote, remotePort, state), family: "IPv6" };
}

function bytesOf(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

// ---------------------------------------------------------------- parsing

suite.test("stateName maps the kernel's codes 01–0B to the eleven states", async (t) => {
  const { stateName } = await load(t);
  for (const [index, expected] of STATES.entries()) {
    const code = index + 1;
    const hex = code.toString(16).toUpperCase().padStart(2, "0");
    const name = await t.step(`stateName(0x${hex})`, () => stateName(code));
    t.expectEqual(
      name,
      expected,
      `stateName(0x${hex}), the st column "${hex}"`,
      "the kernel numbers its states from 1 (01 ESTABLISHED) to 11 (0B CLOSING); a table " +
        "indexed from 0 is off by one",
    );
  }
  for (const code of [0, 12, -1, -11, 1.5, 10.5]) {
    const error = await t.expectError(`stateName(${code})`, () => stateName(code), {
      what: `a RangeError: ${code} is not a TCP state code`,
      note: "the codes are the whole numbers 1 to 11; anything else, a negative number or a " +
        "fraction too, is a RangeError (Array.prototype.at counts negative indexes from the end, " +
        "and a fraction is no index)",
    });
    t.check(error instanceof RangeError, {
      step: `stateName(${code})`,
      expected: "a RangeError",
      actual: String(error),
    });
    const hex = `0x${code.toString(16)}`;
    const token = (text: string) => `(?<![\\w.-])${text.replace(/[.-]/g, "\\$&")}(?![\\w.])`;
    t.check(new RegExp(`${token(String(code))}|${token(hex)}`, "i").test(error.message), {
      step: `stateName(${code}): the RangeError's message`,
      expected: `a message that names the code (${code} or ${hex})`,
      actual: JSON.stringify(error.message),
      note: "an error about a bad value says which value: the reader of a log needs it",
    });
  }
});

suite.test("formatIPv6 writes the short form: the longest zero run as ::", async (t) => {
  const { formatIPv6 } = await load(t);
  const zeros = (n: number) => new Array(n).fill(0);
  const cases: [Uint8Array, string, string][] = [
    [bytesOf(...zeros(15), 1), "::1", "the loopback address"],
    [bytesOf(...zeros(16)), "::", "all zeros (a listener on every address)"],
    [bytesOf(0xfe, 0x80, ...zeros(13), 1), "fe80::1", "lower-case hex"],
    [
      bytesOf(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1),
      "2001:db8::1:0:0:1",
      "two equally long zero runs: only the first becomes ::",
    ],
    [
      bytesOf(0x20, 0x01, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1),
      "2001:0:0:1::1",
      "the LONGEST zero run becomes ::, not the first one",
    ],
    [
      bytesOf(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
      "2001:db8:0:1:1:1:1:1",
      "a single zero group stays 0",
    ],
    [bytesOf(0, 1, ...zeros(14)), "1::", "zeros at the end"],
    [bytesOf(...zeros(10), 0xff, 0xff, 127, 0, 0, 1), "::ffff:127.0.0.1", "IPv4-mapped: dotted"],
    [
      bytesOf(0, 1, ...zeros(8), 0xff, 0xff, 127, 0, 0, 1),
      "1::ffff:7f00:1",
      "ffff in the sixth group is mapped IPv4 only after 80 zero bits",
    ],
    [
      bytesOf(...zeros(10), 0xff, 0x00, 127, 0, 0, 1),
      "::ff00:7f00:1",
      "mapped IPv4 needs ffff in the sixth group, not ff00",
    ],
    [
      bytesOf(...zeros(10), 0x00, 0xff, 127, 0, 0, 1),
      "::ff:7f00:1",
      "mapped IPv4 needs ffff in the sixth group, not 00ff",
    ],
    [
      bytesOf(...zeros(12), 127, 0, 0, 1),
      "::7f00:1",
      "only ::ffff: addresses end in dotted IPv4; the old ::a.b.c.d form is not used",
    ],
  ];
  for (const [bytes, expected, why] of cases) {
    const step = `formatIPv6(${showBytes(bytes)})`;
    const text = await t.step(step, () => formatIPv6(bytes));
    t.expectEqual(text, expected, step, why);
  }
  for (const length of [4, 15, 17]) {
    const step = `formatIPv6(${length} bytes)`;
    const error = await t.expectError(step, () => formatIPv6(new Uint8Array(length).fill(1)), {
      what: "a RangeError: an IPv6 address has 16 bytes",
    });
    t.check(error instanceof RangeError, {
      step,
      expected: "a RangeError (an IPv6 address has exactly 16 bytes)",
      actual: String(error),
      note: "docs/05-tcp-lifecycle.md: formatIPv6 throws a RangeError for anything but 16 bytes",
    });
  }
});

suite.test("decodeAddress: IPv4 bytes in host (little-endian) order, the port in hex", async (t) => {
  const { decodeAddress } = await load(t);
  const cases: [string, SocketAddress][] = [
    ["0100007F:1F90", { address: "127.0.0.1", port: 8080 }],
    ["0101A8C0:0050", { address: "192.168.1.1", port: 80 }],
    ["0F02000A:D431", { address: "10.0.2.15", port: 54321 }],
    ["00000000:0000", { address: "0.0.0.0", port: 0 }],
    ["FFFFFFFF:FFFF", { address: "255.255.255.255", port: 65535 }],
    // The kernel prints upper case, but hex digits are hex digits.
    ["0100007f:1f90", { address: "127.0.0.1", port: 8080 }],
  ];
  for (const [column, expected] of cases) {
    const step = `decodeAddress("${column}")`;
    const address = await t.step(step, () => decodeAddress(column));
    t.expectEqual(
      address,
      expected,
      step,
      "the address is one 32-bit number printed in the machine's byte order (little-endian): " +
        "0100007F holds the bytes 7F 00 00 01, i.e. 127.0.0.1. The port is hex: 1F90 is 8080, " +
        "0050 is 80",
    );
  }
});

suite.test("decodeAddress: IPv6 as four little-endian words, ::ffff:127.0.0.1 too", async (t) => {
  const { decodeAddress } = await load(t);
  const cases: [string, SocketAddress][] = [
    [`${LOOPBACK6}:1F90`, { address: "::1", port: 8080 }],
    [`${ZERO6}:0000`, { address: "::", port: 0 }],
    [`${MAPPED_LOOPBACK}:0016`, { address: "::ffff:127.0.0.1", port: 22 }],
    ["000080FE00000000FF005450563412FE:0016", { address: "fe80::5054:ff:fe12:3456", port: 22 }],
    ["B80D0120000000000000010001000000:01BB", { address: "2001:db8::1:0:0:1", port: 443 }],
    ["b80d0120000000000000010001000000:01bb", { address: "2001:db8::1:0:0:1", port: 443 }],
  ];
  for (const [column, expected] of cases) {
    const step = `decodeAddress("${column}")`;
    const address = await t.step(step, () => decodeAddress(column));
    t.expectEqual(
      address,
      expected,
      step,
      "32 hex digits are four 32-bit words, each printed in little-endian order: reverse the " +
        "bytes inside each word of 8 digits (01000000 → 00 00 00 01), not the whole address",
    );
  }
});

suite.test("decodeAddress refuses what is not an address column", async (t) => {
  const { decodeAddress } = await load(t);
  for (
    const column of [
      "0100007F",
      "0100007F:1F9",
      "0100007F:1F901",
      "00100007F:1F90",
      "127.0.0.1:8080",
      "0100007G:1F90",
      "",
    ]
  ) {
    await t.expectError(`decodeAddress(${JSON.stringify(column)})`, () => decodeAddress(column), {
      what: "an Error: this is not HEX8:HEX4 or HEX32:HEX4",
    });
  }
});

function showSockets(sockets: readonly TcpSocket[]): string {
  if (sockets.length === 0) return "[] (no sockets)";
  return "\n" + sockets.map((s) => `    ${describeSocket(s)}`).join("\n");
}

suite.test("parseProcNetTcp reads a sample of /proc/net/tcp", async (t) => {
  const { parseProcNetTcp } = await load(t);
  const sockets = await t.step(
    'parseProcNetTcp(<sample /proc/net/tcp>, "IPv4")',
    () => parseProcNetTcp(SAMPLE_TCP, "IPv4"),
  );
  t.check(Array.isArray(sockets), {
    step: "parseProcNetTcp's result",
    expected: "an array of sockets",
    actual: String(sockets),
  });
  t.check(sockets.length === SAMPLE_TCP_SOCKETS.length, {
    step: "count the sockets of the sample",
    expected: `${SAMPLE_TCP_SOCKETS.length} sockets (the header line and the empty last line are ` +
      "not sockets)",
    actual: `${sockets.length}:${showSockets(sockets)}`,
    note: `the sample:\n${SAMPLE_TCP}`,
  });
  for (const [i, expected] of SAMPLE_TCP_SOCKETS.entries()) {
    t.expectEqual(
      sockets[i],
      expected,
      `socket ${i + 1} of the sample: ${SAMPLE_TCP.split("\n")[i + 1].trim()}`,
      "split each line on runs of white space (lines start with spaces and end with many; " +
        "slot 10000 is one character wider than slot 999): [slot, local, remote, state, …]",
    );
  }
});

suite.test("parseProcNetTcp needs only the first four fields, separated by any run of spaces", async (t) => {
  const { parseProcNetTcp } = await load(t);
  const text = [
    "  sl  local_address rem_address   st",
    "   0: 0100007F:1F90 00000000:0000 0A",
    "   1:  0100007F:1F90   0100007F:D431  01   " + TAIL,
    "",
  ].join("\n");
  const sockets = await t.step(
    'parseProcNetTcp(<a header, a line of exactly 4 fields, a line with wider gaps>, "IPv4")',
    () => parseProcNetTcp(text, "IPv4"),
  );
  t.expectEqual(
    sockets,
    [
      tcp4("127.0.0.1", 8080, "0.0.0.0", 0, "LISTEN"),
      tcp4("127.0.0.1", 8080, "127.0.0.1", 54321, "ESTABLISHED"),
    ],
    `the sockets of:\n${text}`,
    "a socket line is [slot, local, remote, state, …]: the columns after the state are not " +
      "needed, and fields are separated by runs of spaces (split on /\\s+/)",
  );
});

suite.test("parseProcNetTcp reads a sample of /proc/net/tcp6", async (t) => {
  const { parseProcNetTcp } = await load(t);
  const sockets = await t.step(
    'parseProcNetTcp(<sample /proc/net/tcp6>, "IPv6")',
    () => parseProcNetTcp(SAMPLE_TCP6, "IPv6"),
  );
  t.check(Array.isArray(sockets) && sockets.length === SAMPLE_TCP6_SOCKETS.length, {
    step: "count the sockets of the sample",
    expected: `${SAMPLE_TCP6_SOCKETS.length} sockets`,
    actual: Array.isArray(sockets) ? `${sockets.length}:${showSockets(sockets)}` : String(sockets),
  });
  for (const [i, expected] of SAMPLE_TCP6_SOCKETS.entries()) {
    t.expectEqual(
      sockets[i],
      expected,
      `socket ${i + 1} of the sample: ${SAMPLE_TCP6.split("\n")[i + 1].trim().slice(0, 90)}…`,
    );
  }
  await t.expectError(
    'parseProcNetTcp(<sample /proc/net/tcp>, "IPv6")',
    () => parseProcNetTcp(SAMPLE_TCP, "IPv6"),
    { what: "an Error: IPv4 lines (8-digit addresses) in a table said to be IPv6" },
  );
  await t.expectError(
    'parseProcNetTcp(<sample /proc/net/tcp6>, "IPv4")',
    () => parseProcNetTcp(SAMPLE_TCP6, "IPv4"),
    {
      what: "an Error: IPv6 lines (32-digit addresses) in a table said to be IPv4",
      note: "the family fixes the width of an address: 8 hex digits for IPv4, 32 for IPv6; a " +
        "line that does not fit the family it was given is an Error, either way round",
    },
  );
});

// ---------------------------------------------------------------- watching real sockets

/** `127.0.0.1:9000`, `[::1]:9000`. */
function endpoint(end: SocketAddress): string {
  return end.address.includes(":") ? `[${end.address}]:${end.port}` : `${end.address}:${end.port}`;
}

function describeSocket(socket: TcpSocket): string {
  return `${socket.family} ${endpoint(socket.local)} → ${endpoint(socket.remote)} ${socket.state}`;
}

/** What the suite expects of one socket: its exact ends, and a state or `gone`. */
interface Want {
  family: "IPv4" | "IPv6";
  local: SocketAddress;
  remote: SocketAddress;
  state: TcpStateName | "gone";
  /** Who this socket is, in words: "the server's end". */
  who: string;
}

function sameEnds(socket: TcpSocket, want: Want): boolean {
  return socket?.family === want.family &&
    socket.local?.address === want.local.address && socket.local?.port === want.local.port &&
    socket.remote?.address === want.remote.address && socket.remote?.port === want.remote.port;
}

function describeWant(want: Want): string {
  const ends = `${want.family} ${endpoint(want.local)} → ${endpoint(want.remote)}`;
  return `${want.who}: ${ends} ${want.state === "gone" ? "no longer listed" : want.state}`;
}

function unmet(sockets: TcpSocket[], wants: Want[]): Want[] {
  return wants.filter((want) => {
    const found = sockets.filter((s) => sameEnds(s, want));
    return want.state === "gone" ? found.length > 0 : !found.some((s) => s.state === want.state);
  });
}

/**
 * Loads the lesson for a live check. The live checks trust the learner's
 * parser to name what the kernel shows, so it must read the sample tables
 * right first. Without this gate a wrong parser would make every live check
 * wait for its deadline.
 */
async function loadTrusted(t: Grader): Promise<Solution> {
  const lesson = await load(t);
  const parsed = await t.step(
    "your parseProcNetTcp on the sample tables, before the grader trusts it with live sockets",
    () => [
      ...lesson.parseProcNetTcp(SAMPLE_TCP, "IPv4"),
      ...lesson.parseProcNetTcp(SAMPLE_TCP6, "IPv6"),
    ],
  );
  if (!isDeepStrictEqual(parsed, [...SAMPLE_TCP_SOCKETS, ...SAMPLE_TCP6_SOCKETS])) {
    t.fail({
      step:
        "your parseProcNetTcp on the sample tables, before the grader trusts it with live sockets",
      expected: "the samples read right",
      actual: "not yet: see the stateName, decodeAddress and parseProcNetTcp checks",
      note:
        "this check watches real sockets through your parser; make the sample checks pass first",
    });
  }
  return lesson;
}

/** Calls the learner's observer as a step; explains Deno's /proc guard if that was hit. */
async function look(t: Grader, lesson: Solution, port: number): Promise<TcpSocket[]> {
  let sockets: TcpSocket[];
  try {
    // A generous deadline: the tables can hold thousands of lines on a busy machine.
    sockets = await t.step(`your socketsOnPort(${port})`, () => lesson.socketsOnPort(port), {
      timeoutMs: 5000,
    });
  } catch (error) {
    if (isGradeFailure(error) && error.details.actual?.includes("/proc")) {
      error.details.note = 'read the tables with readProcNet("tcp") and readProcNet("tcp6") from ' +
        '"workbook": Deno refuses plain reads under /proc unless it runs with --allow-all, and ' +
        "this lesson may only run `cat`";
      error.message = error.render();
    }
    throw error;
  }
  t.check(Array.isArray(sockets), {
    step: `your socketsOnPort(${port})`,
    expected: "an array of sockets",
    actual: String(sockets),
  });
  const strangers = sockets.filter((s) => s?.local?.port !== port && s?.remote?.port !== port);
  t.check(strangers.length === 0, {
    step: `your socketsOnPort(${port})`,
    expected: `only sockets whose local or remote port is ${port}`,
    actual: `${strangers.length} of the ${sockets.length} sockets are on other ports, e.g.:` +
      showSockets(strangers.slice(0, 3)),
    note: "keep only the sockets with the port at either end: the machine has many others",
  });
  return sockets;
}

/**
 * Looks at `port` with the learner's observer until every want holds, or
 * fails at the deadline showing the last answer.
 */
async function observe(
  t: Grader,
  lesson: Solution,
  port: number,
  what: string,
  wants: Want[],
  note?: string,
): Promise<TcpSocket[]> {
  const deadline = runDeadline(STATE_DEADLINE_MS);
  try {
    for (let looks = 1;; looks++) {
      const sockets = await look(t, lesson, port);
      const missing = unmet(sockets, wants);
      if (missing.length === 0) return sockets;
      if (looks >= MIN_LOOKS && deadline.passed()) {
        t.fail({
          step: `${what} (looked at port ${port} ${looks} times in ${STATE_DEADLINE_MS} ms)`,
          expected: wants.map(describeWant).join("\n          "),
          actual: `not seen: ${missing.map(describeWant).join("; ")}.\n          ` +
            `your socketsOnPort(${port}) returned:${showSockets(sockets)}`,
          note: note ??
            "the sockets of this check are listed with their exact addresses and ports; " +
              "a wrong address (byte order), a wrong port (hex!) or a wrong state name each hide one",
        });
      }
      await nextTurn(LOOK_INTERVAL_MS);
    }
  } finally {
    deadline.done();
  }
}

/** Looks `times` more times and fails if a want stops holding: the state stays. */
async function stays(
  t: Grader,
  lesson: Solution,
  port: number,
  what: string,
  wants: Want[],
  times: number,
): Promise<void> {
  for (let i = 1; i <= times; i++) {
    await nextTurn(LOOK_INTERVAL_MS);
    const sockets = await look(t, lesson, port);
    const missing = unmet(sockets, wants);
    t.check(missing.length === 0, {
      step: `${what} (look ${i} of ${times})`,
      expected: wants.map(describeWant).join("\n          "),
      actual: `your socketsOnPort(${port}) returned:${showSockets(sockets)}`,
    });
  }
}

/** A grader-side connection on `hostname`: listener, client end, server end, all recorded. */
async function connection(t: Grader, hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  let listenerOpen = true;
  const closeListener = () => {
    if (!listenerOpen) return;
    listenerOpen = false;
    listener.close();
  };
  t.defer(closeListener);
  const accepted = listener.accept();
  const client = await t.connect(listener.addr, "client");
  const server = t.wrapAccepted(await accepted, "server");
  t.defer(() => server.close());
  const port = listener.addr.port;
  const clientPort = (client.conn.localAddr as Deno.NetAddr).port;
  const family = hostname.includes(":") ? "IPv6" as const : "IPv4" as const;
  const any = family === "IPv6" ? "::" : "0.0.0.0";
  const serverAt = { address: hostname, port };
  const clientAt = { address: hostname, port: clientPort };
  return {
    port,
    clientPort,
    closeListener,
    client,
    server,
    listening: {
      family,
      local: serverAt,
      remote: { address: any, port: 0 },
      who: "the listener",
    },
    serverEnd: { family, local: serverAt, remote: clientAt, who: "the server's end" },
    clientEnd: { family, local: clientAt, remote: serverAt, who: "the client's end" },
  };
}

function want(end: Omit<Want, "state">, state: Want["state"]): Want {
  return { ...end, state };
}

suite.test("socketsOnPort sees a listener on 127.0.0.1 in LISTEN", async (t) => {
  const lesson = await loadTrusted(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const port = listener.addr.port;
  await observe(t, lesson, port, "a listener the grader opened on 127.0.0.1", [{
    family: "IPv4",
    local: { address: "127.0.0.1", port },
    remote: { address: "0.0.0.0", port: 0 },
    state: "LISTEN",
    who: "the grader's listener",
  }]);
}, LIVE);

suite.test("socketsOnPort sees both ends of a connection ESTABLISHED", async (t) => {
  const lesson = await loadTrusted(t);
  const c = await connection(t, "127.0.0.1");
  await observe(
    t,
    lesson,
    c.port,
    "after the three-way handshake (SYN, SYN-ACK, ACK)",
    [
      want(c.listening, "LISTEN"),
      want(c.serverEnd, "ESTABLISHED"),
      want(c.clientEnd, "ESTABLISHED"),
    ],
    "a connection on 127.0.0.1 has two sockets on the same machine: the server's end (local " +
      "port = the listener's port) and the client's end (remote port = the listener's port); " +
      "socketsOnPort returns every socket whose local OR remote port is the port",
  );
}, LIVE);

suite.test("socketsOnPort reads /proc/net/tcp6 too: a connection over ::1", async (t) => {
  const lesson = await loadTrusted(t);
  const c = await connection(t, "::1");
  await observe(t, lesson, c.port, "a listener and a connection on ::1", [
    want(c.listening, "LISTEN"),
    want(c.serverEnd, "ESTABLISHED"),
    want(c.clientEnd, "ESTABLISHED"),
  ], "IPv6 sockets are listed in /proc/net/tcp6, not /proc/net/tcp: read both tables");
}, { ...LIVE, requires: ["ipv6"] });

suite.test(
  "half-close: FIN_WAIT2 on the side that stopped sending, CLOSE_WAIT on its peer",
  async (t) => {
    const lesson = await loadTrusted(t);
    const c = await connection(t, "127.0.0.1");
    await look(t, lesson, c.port);
    await c.client.closeWrite();
    await observe(
      t,
      lesson,
      c.port,
      "after the client's closeWrite() (its FIN, the server's ACK)",
      [
        want(c.clientEnd, "FIN_WAIT2"),
        want(c.serverEnd, "CLOSE_WAIT"),
      ],
    );
    // Half-closed is still half open: the server can answer, the client still reads.
    await c.server.expectEnd({ step: "the server reads end-of-stream (the client's FIN)" });
    await c.server.send("the reply still flows after your FIN\n");
    await c.client.expect("the reply still flows after your FIN\n", {
      step: "the half-closed client still reads the server's reply",
    });
    await c.server.close();
    await observe(
      t,
      lesson,
      c.port,
      "after the server closed too (its FIN, the client's ACK)",
      [
        want(c.clientEnd, "TIME_WAIT"),
        want(c.serverEnd, "gone"),
      ],
      "the side that sent the first FIN (here the client) ends in TIME_WAIT; the other side " +
        "passes LAST_ACK and is gone as soon as its FIN is acknowledged",
    );
  },
  LIVE,
);

suite.test(
  "TIME_WAIT lands on the active closer (the server here), yet its port can be listened on again",
  async (t) => {
    const lesson = await loadTrusted(t);
    const c = await connection(t, "127.0.0.1");
    await look(t, lesson, c.port);
    await c.server.close();
    await observe(t, lesson, c.port, "after the server closed first", [
      want(c.serverEnd, "FIN_WAIT2"),
      want(c.clientEnd, "CLOSE_WAIT"),
    ]);
    await c.client.expectEnd({ step: "the client reads end-of-stream" });
    await c.client.close();
    await observe(
      t,
      lesson,
      c.port,
      "after the client closed as well",
      [
        want(c.serverEnd, "TIME_WAIT"),
        want(c.clientEnd, "gone"),
      ],
      "the side that closed first — the server here — keeps the connection in TIME_WAIT " +
        "(60 s on Linux); that is why busy servers that hang up on clients collect TIME_WAIT sockets",
    );
    c.closeListener();
    let again: Deno.TcpListener;
    try {
      again = Deno.listen({ hostname: "127.0.0.1", port: c.port });
    } catch (error) {
      t.fail({
        step: `the grader listens again on 127.0.0.1:${c.port} while a TIME_WAIT socket holds it`,
        expected: "it works: Deno sets SO_REUSEADDR on its listeners",
        actual: String(error),
        note: "this is the grader's own check of Deno, not of your code",
      });
    }
    t.defer(() => again.close());
    await observe(t, lesson, c.port, "a new listener beside the old connection's TIME_WAIT", [
      want(c.listening, "LISTEN"),
      want(c.serverEnd, "TIME_WAIT"),
    ]);
  },
  LIVE,
);

suite.test("CLOSE_WAIT stays for as long as a server forgets to close", async (t) => {
  const lesson = await loadTrusted(t);
  const c = await connection(t, "127.0.0.1");
  await look(t, lesson, c.port);
  await c.client.close();
  await c.server.expectEnd({ step: "the server reads end-of-stream, and forgets to close" });
  const forgotten = [want(c.serverEnd, "CLOSE_WAIT"), want(c.clientEnd, "FIN_WAIT2")];
  await observe(t, lesson, c.port, "the client closed, the server did not", forgotten);
  await stays(t, lesson, c.port, "CLOSE_WAIT is still there", forgotten.slice(0, 1), 5);
  await c.server.close();
  await observe(t, lesson, c.port, "the server closes at last", [
    want(c.serverEnd, "gone"),
    want(c.clientEnd, "TIME_WAIT"),
  ]);
}, LIVE);

// ---------------------------------------------------------------- waitForState

/** A scripted observer: look n returns script[n] (the last one forever), and counts looks. */
function scripted(script: TcpSocket[][]) {
  const calls: number[] = [];
  return {
    calls,
    observe: (port: number) => {
      calls.push(port);
      return Promise.resolve(structuredClone(script[Math.min(calls.length, script.length) - 1]));
    },
  };
}

suite.test("waitForState looks again until the state appears", async (t) => {
  const { waitForState } = await load(t);
  const end = (state: TcpStateName) => tcp4("127.0.0.1", 9000, "127.0.0.1", 51000, state);
  const script = scripted([
    [end("ESTABLISHED")],
    [end("ESTABLISHED")],
    [end("FIN_WAIT1")],
    [end("FIN_WAIT2")],
    [end("TIME_WAIT")],
  ]);
  const found = await t.step(
    'waitForState({ port: 9000 }, "TIME_WAIT", { observe, intervalMs: 1 }) where the ' +
      "observer shows ESTABLISHED, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, then TIME_WAIT",
    () => waitForState({ port: 9000 }, "TIME_WAIT", { observe: script.observe, intervalMs: 1 }),
    {
      note: "the kernel moves a socket through its states on its own time: look, and while the " +
        "state is not there, pause intervalMs and look again, until timeoutMs have passed",
      notePlacement: "before",
    },
  );
  t.expectEqual(found, end("TIME_WAIT"), "the socket waitForState returned");
  t.check(script.calls.length === 5, {
    step: "how many times waitForState looked",
    expected: "5 looks: one per state, stopping at the first TIME_WAIT",
    actual: `${script.calls.length}`,
  });
  t.check(script.calls.every((port) => port === 9000), {
    step: "the port waitForState asked the observer about",
    expected: "9000 each time",
    actual: script.calls.join(", "),
  });
});

suite.test("waitForState watches the end whose LOCAL port it is given", async (t) => {
  const { waitForState } = await load(t);
  const others = [
    tcp4("127.0.0.1", 9000, "0.0.0.0", 0, "LISTEN"),
    // Another service's connection whose peer happens to use port 51000 too.
    tcp4("10.0.2.15", 7777, "10.0.2.2", 51000, "TIME_WAIT"),
    // The client's end of the watched connection: port 9000 is its REMOTE port.
    tcp4("127.0.0.1", 51000, "127.0.0.1", 9000, "TIME_WAIT"),
    // Another connection to the same server.
    tcp4("127.0.0.1", 9000, "127.0.0.1", 52000, "TIME_WAIT"),
  ];
  const watched = (state: TcpStateName) => tcp4("127.0.0.1", 9000, "127.0.0.1", 51000, state);
  const script = scripted([
    [...others, watched("FIN_WAIT2")],
    [...others, watched("FIN_WAIT2")],
    [...others, watched("TIME_WAIT")],
  ]);
  const found = await t.step(
    'waitForState({ port: 9000, peerPort: 51000 }, "TIME_WAIT", …) while the client\'s end ' +
      "(local port 51000), another connection (peer 52000) and a socket on port 7777 with peer " +
      "port 51000 are in TIME_WAIT already",
    () =>
      waitForState({ port: 9000, peerPort: 51000 }, "TIME_WAIT", {
        observe: script.observe,
        intervalMs: 1,
      }),
  );
  t.expectEqual(
    found,
    watched("TIME_WAIT"),
    "the socket waitForState returned",
    "only sockets whose local.port is end.port and whose remote.port is end.peerPort count: " +
      "the other end of the same connection has the port as its REMOTE port",
  );
  t.check(script.calls.length === 3, {
    step: "how many times waitForState looked",
    expected: "3: the watched end reaches TIME_WAIT at the third look",
    actual: `${script.calls.length}`,
  });
});

suite.test("waitForState gives up at its deadline with a StateTimeoutError", async (t) => {
  const { waitForState } = await load(t);
  const script = scripted([[tcp4("127.0.0.1", 9000, "127.0.0.1", 51000, "CLOSE_WAIT")]]);
  const error = await t.expectError(
    'waitForState({ port: 9000 }, "TIME_WAIT", { timeoutMs: 100, intervalMs: 10, observe }) ' +
      "where the socket stays in CLOSE_WAIT",
    () =>
      waitForState({ port: 9000 }, "TIME_WAIT", {
        observe: script.observe,
        timeoutMs: 100,
        intervalMs: 10,
      }),
    { name: "StateTimeoutError", what: "after about 100 ms; the class is given in the file" },
  );
  t.expectEqual(
    error.seen,
    ["CLOSE_WAIT"],
    "the error's seen: the states of the watched end at the last look",
  );
  t.check(script.calls.length >= 2, {
    step: "how many times waitForState looked before giving up",
    expected: "more than once: the state can change between looks",
    actual: `${script.calls.length}`,
  });
  t.check(script.calls.length <= 60, {
    step: "how many times waitForState looked in 100 ms with intervalMs 10",
    expected: "about 10: pause intervalMs between looks",
    actual: `${script.calls.length}: it looks again without pausing, keeping the CPU busy`,
  });

  // seen: the watched end only (not the listener, its peer or another connection), at the LAST look.
  const server = (peer: number, state: TcpStateName) =>
    tcp4("127.0.0.1", 9000, "127.0.0.1", peer, state);
  const looks = (watched: TcpStateName, client: TcpStateName) => [
    tcp4("127.0.0.1", 9000, "0.0.0.0", 0, "LISTEN"),
    server(51000, watched),
    tcp4("127.0.0.1", 51000, "127.0.0.1", 9000, client),
    server(52000, "TIME_WAIT"),
  ];
  const closing = scripted([looks("ESTABLISHED", "ESTABLISHED"), looks("FIN_WAIT2", "CLOSE_WAIT")]);
  const step = 'waitForState({ port: 9000, peerPort: 51000 }, "CLOSE_WAIT", { timeoutMs: 100, ' +
    "intervalMs: 5, observe }) where the watched end is ESTABLISHED at the first look, then " +
    "FIN_WAIT2 for good, beside the listener (LISTEN), the client's end (CLOSE_WAIT) and another " +
    "connection (TIME_WAIT)";
  const timedOut = await t.expectError(
    step,
    () =>
      waitForState({ port: 9000, peerPort: 51000 }, "CLOSE_WAIT", {
        observe: closing.observe,
        timeoutMs: 100,
        intervalMs: 5,
      }),
    { name: "StateTimeoutError", what: "the watched end never reaches CLOSE_WAIT" },
  );
  // A machine too busy for a second look within 100 ms: the first look is the last one.
  const last = closing.calls.length > 1 ? "FIN_WAIT2" : "ESTABLISHED";
  t.expectEqual(
    timedOut.seen,
    [last],
    `${step}: the error's seen, after ${closing.calls.length} look(s)`,
    "seen lists the states of the watched end only (local port end.port, remote port " +
      "end.peerPort) at the LAST look: not the other sockets on the port, and not every state " +
      "the end went through",
  );
});

suite.test("waitForState looks at least once, and never sleeps past its deadline", async (t) => {
  const { waitForState } = await load(t);
  const socket = tcp4("127.0.0.1", 9000, "127.0.0.1", 51000, "CLOSE_WAIT");
  const there = scripted([[socket]]);
  const found = await t.step(
    'waitForState({ port: 9000 }, "CLOSE_WAIT", { timeoutMs: 0, observe }) where the socket ' +
      "is in CLOSE_WAIT already",
    () => waitForState({ port: 9000 }, "CLOSE_WAIT", { observe: there.observe, timeoutMs: 0 }),
    {
      note: "look first, then decide whether the deadline has passed: with timeoutMs 0 the one " +
        "look still counts (a loop `while (now < deadline) { look }` never looks at all)",
    },
  );
  t.expectEqual(
    found,
    socket,
    "the socket waitForState returned with timeoutMs 0",
    "look first, then decide whether the deadline has passed: with timeoutMs 0 the one look " +
      "still counts",
  );
  t.check(there.calls.length === 1, {
    step: "how many times waitForState looked with timeoutMs 0",
    expected: "once",
    actual: `${there.calls.length}`,
  });

  const never = scripted([[socket]]);
  const error = await t.expectError(
    'waitForState({ port: 9000 }, "TIME_WAIT", { timeoutMs: 50, intervalMs: 5000, observe }) ' +
      "where the socket stays in CLOSE_WAIT",
    () =>
      waitForState({ port: 9000 }, "TIME_WAIT", {
        observe: never.observe,
        timeoutMs: 50,
        intervalMs: 5000,
      }),
    {
      name: "StateTimeoutError",
      what: "after about 50 ms, not after a whole 5 s interval",
      note: "the deadline wins over the interval: pause for intervalMs or for the time left, " +
        "whichever is shorter, then look a last time and give up",
    },
  );
  t.expectEqual(
    { seen: error.seen, timeoutMs: error.timeoutMs },
    { seen: ["CLOSE_WAIT"], timeoutMs: 50 },
    "the StateTimeoutError's seen and timeoutMs",
  );

  // A pause shorter than intervalMs is still a pause: the state may arrive in the time left.
  const late = scripted([[socket], [{ ...socket, state: "TIME_WAIT" }]]);
  const lateStep = 'waitForState({ port: 9000 }, "TIME_WAIT", { timeoutMs: 50, intervalMs: 5000, ' +
    "observe }) where the socket is in CLOSE_WAIT at the first look and in TIME_WAIT at the next";
  const arrived = await t.step(
    lateStep,
    () =>
      waitForState({ port: 9000 }, "TIME_WAIT", {
        observe: late.observe,
        timeoutMs: 50,
        intervalMs: 5000,
      }),
    {
      note: "less time left than intervalMs is no reason to give up: pause for the time left, " +
        "then look a last time",
      notePlacement: "before",
    },
  );
  t.expectEqual(
    { found: arrived, looks: late.calls.length },
    { found: { ...socket, state: "TIME_WAIT" }, looks: 2 },
    `${lateStep}: the socket returned and the number of looks`,
    "pause for intervalMs or the time left, whichever is shorter, then look again; give up only " +
      "when a look finds the deadline passed",
  );
});

suite.test("waitForState sees a real connection reach TIME_WAIT", async (t) => {
  const lesson = await loadTrusted(t);
  const { waitForState } = lesson;
  const c = await connection(t, "127.0.0.1");
  const waiting = t.step(
    `waitForState({ port: ${c.clientPort}, peerPort: ${c.port} }, "TIME_WAIT") on the client's ` +
      "end, started before anything closes",
    () => waitForState({ port: c.clientPort, peerPort: c.port }, "TIME_WAIT", { timeoutMs: 3000 }),
    { timeoutMs: 5000 },
  );
  waiting.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled
  await c.client.close();
  await c.server.expectEnd({ step: "the server reads end-of-stream" });
  await c.server.close();
  const found = await waiting;
  t.expectEqual(
    found,
    tcp4("127.0.0.1", c.clientPort, "127.0.0.1", c.port, "TIME_WAIT"),
    "the socket waitForState returned",
  );
}, LIVE);

// ---------------------------------------------------------------- half-close client

const HALF_CLOSE_NOTE = "after writing the request, half-close with `await conn.closeWrite()`: " +
  "the server answers only once it reads end-of-stream. Then read until read() returns null. " +
  "conn.close() would end your reading side too, and the reply would be refused";

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) % 251);
}

const EXCHANGES: {
  name: string;
  /** What the grader's server must receive. */
  request: Uint8Array;
  /** What requestWithHalfClose is given, when not `request` itself. */
  given?: string;
  reply: Uint8Array;
  split: SplitMode;
  /** How long the grader's server waits for the request's end (default: one step). */
  readMs?: number;
}[] = [
  {
    name: "a short request, a reply sent 1 byte at a time",
    request: new TextEncoder().encode("TIME please\n"),
    reply: new TextEncoder().encode("it is the time after your FIN\n"),
    split: "bytes",
  },
  {
    name: "100 kB each way, the reply in uneven chunks",
    request: pattern(100_000, 7),
    reply: pattern(100_000, 11),
    split: [20_000, 7, 30_000],
  },
  {
    name: "a string request, sent as UTF-8",
    request: new TextEncoder().encode("héllo, 世界 🌍\n"),
    given: "héllo, 世界 🌍\n",
    reply: new TextEncoder().encode("got it\n"),
    split: "whole",
  },
  {
    // More than the two socket buffers hold: one write() cannot take it all.
    name: "an 8 MB request, more than one write() takes",
    request: pattern(8 * 1024 * 1024, 13),
    reply: new TextEncoder().encode("8 MB received\n"),
    split: "whole",
    // Copying 8 MB through both ends is this process's own work, which no deadline gives back.
    readMs: 3000,
  },
];

for (const exchange of EXCHANGES) {
  suite.test(`requestWithHalfClose half-closes and reads the whole reply (${exchange.name})`, async (t) => {
    const { requestWithHalfClose } = await load(t);
    const server = t.serve(async (conn: Probe) => {
      // This server is strict: it answers only once the request has ended (EOF).
      const request = await conn.readToEnd({
        step: "the grader's server reads your request until your half-close (EOF)",
        timeoutMs: exchange.readMs ?? STEP_MS,
        note: HALF_CLOSE_NOTE,
        notePlacement: "before",
      });
      if (!equalBytes(request, exchange.request)) {
        t.fail({
          step: "the request the grader's server received",
          comparison: showDifference(exchange.request, request),
          note: "write every byte: conn.write() may take only part of the buffer (it returns " +
            "how many bytes it took); a string request is sent as its UTF-8 bytes",
        });
      }
      if (conn.ending !== "eof") {
        t.fail({
          step: "how your client ended its request",
          expected: "a half-close (FIN): read() returns null on the server",
          actual: `the connection ended with ${conn.ending}`,
          note: HALF_CLOSE_NOTE,
        });
      }
      await conn.send(exchange.reply, { split: exchange.split });
      await conn.close();
    });
    const reply = await t.step(
      `requestWithHalfClose(grader's server, ${
        exchange.given === undefined
          ? `${exchange.request.length} bytes`
          : JSON.stringify(exchange.given)
      })`,
      () => requestWithHalfClose(server.addr, exchange.given ?? exchange.request),
      // Longer than the server's wait, so a missing half-close is reported as that.
      {
        timeoutMs: (exchange.readMs ?? STEP_MS) + STEP_MS,
        note: HALF_CLOSE_NOTE,
        notePlacement: "before",
      },
    );
    t.check(reply instanceof Uint8Array, {
      step: "what requestWithHalfClose returned",
      expected: "a Uint8Array with the reply",
      actual: String(reply),
    });
    if (!equalBytes(reply, exchange.reply)) {
      t.fail({
        step: "the reply requestWithHalfClose returned",
        comparison: showDifference(exchange.reply, reply),
        note: `${HALF_CLOSE_NOTE}; keep every chunk: one read() is not the whole reply`,
      });
    }
    await t.step("the grader's server finishes", () => server.settled());
  });
}

suite.test("requestWithHalfClose connects to the host it is given (a server on ::1)", async (t) => {
  const { requestWithHalfClose } = await load(t);
  const request = new TextEncoder().encode("over IPv6\n");
  const reply = new TextEncoder().encode("reply from [::1]\n");
  const server = t.serve(async (conn: Probe) => {
    await conn.expect(request, { step: "the grader's server on ::1 reads your request" });
    await conn.expectEnd({ step: "the grader's server reads your half-close (EOF)" });
    await conn.send(reply);
    await conn.close();
  }, { hostname: "::1" });
  const got = await t.step(
    `requestWithHalfClose({ hostname: "::1", port: ${server.addr.port} }, "over IPv6\\n")`,
    () => requestWithHalfClose({ hostname: "::1", port: server.addr.port }, request),
    {
      timeoutMs: 2 * STEP_MS,
      note: "connect to address.hostname AND address.port: Deno.connect without a hostname " +
        "goes to 127.0.0.1, where nothing listens on this port",
      notePlacement: "before",
    },
  );
  if (!(got instanceof Uint8Array) || !equalBytes(got, reply)) {
    t.fail({
      step: "the reply requestWithHalfClose returned",
      comparison: showDifference(reply, got instanceof Uint8Array ? got : new Uint8Array(0)),
    });
  }
  await t.step("the grader's server finishes", () => server.settled());
}, { requires: ["ipv6"] });

suite.test("requestWithHalfClose passes a reset through and still closes its connection", async (t) => {
  const { requestWithHalfClose } = await load(t);
  // A server that reads the whole request, then resets the connection instead of replying.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("error", () => {});
    socket.on("data", () => {});
    socket.on("end", () => socket.resetAndDestroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = { hostname: "127.0.0.1", port: (server.address() as net.AddressInfo).port };
  const before = openDescriptors();
  await t.expectError(
    `requestWithHalfClose(127.0.0.1:${address.port}, "reset me\\n") where the server reads the ` +
      "request, then resets the connection (RST)",
    () => requestWithHalfClose(address, "reset me\n"),
    {
      name: "ConnectionReset",
      what: "from the read of the reply: the error passes through",
      note: "a reset is not an empty reply: let the error out of requestWithHalfClose",
    },
  );
  if (before === undefined) return; // descriptors cannot be counted here
  let now = before;
  await t.eventually(
    "the connection requestWithHalfClose opened, after it failed",
    () => (now = openDescriptors() ?? before) <= before,
    {
      expected: `closed: this process back to its ${before} open descriptors`,
      actual: () => `${now} descriptors are open: ${now - before} more than before the request`,
      note: "close the connection in a finally block, so that it is closed on every way out, " +
        "a failed read included",
    },
  );
});
