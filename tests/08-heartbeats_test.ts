/**
 * Grading suite of lesson 08 — heartbeats and expiry.
 * Run it with `deno task lesson 8`.
 *
 * Time: most checks hand the lesson a ManualClock and move it by hand, so a
 * "120 ms of silence" takes no real time and no check depends on timing luck.
 * Two integration checks run on real millisecond timers and wait only for
 * events (an expiry, a hang-up), never for a duration to be short enough.
 *
 * UDP has no "connection" to watch, so absence is proven by order: a socket's
 * *next* datagram must be a later message; anything that should not have come
 * would have arrived before it.
 */
import {
  captureLogs,
  freePort,
  gateListen,
  type Grader,
  ioTurns,
  lessonSuite,
  logText,
  nextTurn,
  type Probe,
  requirementMissing,
  STEP_MS,
  waitFor,
} from "../workbook/harness/mod.ts";
import { ManualClock } from "../workbook/harness/manual_clock.ts";
import { type Datagram, openUdpProbe, UdpProbe } from "../workbook/harness/udp_probe.ts";
import type * as Lesson from "../solutions/08-heartbeats/heartbeat.ts";

const suite = lessonSuite("08");
/** Whether ::1 works here: the hostname parts of two checks need it. */
const IPV6_LOOPBACK = requirementMissing("ipv6") === undefined;
const load = (t: Grader) => t.load<typeof Lesson>();
const encoder = new TextEncoder();

/** Settings of the fake-clock chat checks. */
const TIMEOUT_MS = 100;
const SWEEP_MS = 10;

/** The doc's numbers for a datagram too long to forward. */
const MAX_UDP_PAYLOAD = 65_507;
const TOO_LONG_NOTICE = "server: message too long, not forwarded\n";
/** Every message the checks send from a non-member contains this. */
const STRANGER_MARK = "[not a member]";

// ─── helpers ────────────────────────────────────────────────────────────────

const key = (addr: { hostname: string; port: number }) => `${addr.hostname}:${addr.port}`;
const udpAddr = (port: number): Deno.NetAddr => ({ transport: "udp", hostname: "127.0.0.1", port });
const keys = (entries: { key: string }[]) => entries.map((entry) => entry.key);

/**
 * Reads learner state until `done` holds, for changes no message announces
 * (a registry after a datagram was handled). Polls every 2 ms up to a deadline.
 */
async function pollUntil<T>(
  t: Grader,
  step: string,
  read: () => T,
  done: (value: T) => boolean,
  failure: { expected: string; actual: (value: T) => string; note?: string },
  timeoutMs = STEP_MS,
): Promise<T> {
  return await t.step(step, async () => {
    let value!: T; // set by the first look, before actual() can be asked
    await t.eventually(step, () => done(value = read()), {
      expected: failure.expected,
      actual: () => failure.actual(value),
      note: failure.note,
      timeoutMs,
      everyMs: 2,
    });
    return value;
  }, { timeoutMs: timeoutMs + 1000 });
}

/**
 * Starts long-running learner code (it returns when a connection ends) and
 * surfaces a failure that comes at once, such as "not implemented yet".
 */
async function start<T>(
  t: Grader,
  step: string,
  run: () => Promise<T>,
): Promise<{ running: Promise<T> }> {
  let running!: Promise<T>;
  await t.step(step, async () => {
    running = run();
    running.catch(() => {}); // awaited later; an early failure shows right here
    await waitFor(running, { timeoutMs: 0 }); // one macrotask for it to fail at once
  });
  return { running };
}

/** Moves the fake clock; timer callbacks in learner code run inside the step. */
async function advance(t: Grader, clock: ManualClock, ms: number): Promise<void> {
  await t.step(
    `advance the clock by ${ms} ms to ${clock.now() + ms} ms`,
    () => void clock.advance(ms),
  );
}

/**
 * `target` as learner code will see it, with `overrides` in place of some of
 * its members: how the grader watches what that code does with a socket.
 * Every other member is the target's own (methods bound to it).
 */
function overriding<T extends object>(target: T, overrides: Record<string | symbol, unknown>): T {
  return new Proxy(target, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property];
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Runs `start` with `Deno[name]` swapped for `replacement(real)`, and puts the real one back. */
function whileSwapped<K extends "listen" | "listenDatagram", T>(
  name: K,
  replacement: (real: typeof Deno[K]) => typeof Deno[K],
  start: () => T,
): T {
  const real = Deno[name];
  Deno[name] = replacement(real);
  try {
    return start();
  } finally {
    Deno[name] = real;
  }
}

/**
 * Fails unless no timer is left on the fake clock, looked at after `after`;
 * the timers that are left are listed unless `list` is false.
 */
function expectNoTimers(
  t: Grader,
  clock: ManualClock,
  after: string,
  options: { expected?: string; list?: boolean; note?: string } = {},
): void {
  t.check(clock.pending === 0, {
    step: `look at the fake clock after ${after}`,
    expected: options.expected ?? "no timer left scheduled",
    actual: `${clock.pending} timer(s) still scheduled${
      options.list === false ? "" : ` (${JSON.stringify(clock.timers())})`
    }`,
    note: options.note,
  });
}

const CLOSE_AGAIN_NOTE =
  "close() may be called again: remember that it ran and return at once the second time";

// ─── UDP chat helpers ───────────────────────────────────────────────────────

type ChatServer = Lesson.ChatServer;

function describeClients(server: ChatServer, clock?: ManualClock): string {
  const list = server.clients();
  if (list.length === 0) return "no client registered";
  return `registered: ${list.map((c) => `${c.key} (lastSeen ${c.lastSeen})`).join(", ")}${
    clock ? ` at ${clock.now()} ms` : ""
  }`;
}

async function startServer(t: Grader, clock?: ManualClock): Promise<ChatServer> {
  const { startChatServer } = await load(t);
  const options = clock
    ? { hostname: "127.0.0.1", port: 0, timeoutMs: TIMEOUT_MS, sweepMs: SWEEP_MS, clock }
    : { hostname: "127.0.0.1", port: 0, timeoutMs: 60, sweepMs: 15 };
  const server = await t.step(
    `startChatServer({ timeoutMs: ${options.timeoutMs}, sweepMs: ${options.sweepMs}${
      clock ? ", clock: a fake clock" : ""
    } })`,
    () => startChatServer(options),
  );
  t.defer(() => server.close());
  if (clock) {
    t.check(clock.pending > 0, {
      step: "look at the fake clock after startChatServer",
      expected: "a sweep timer scheduled on the clock you were given (clock.setInterval)",
      actual: "no timer scheduled on it",
      note: "expiry needs a timer from options.clock: the global setInterval never sees the " +
        "grader's fake clock move (and a real interval left running leaks)",
    });
  }
  return server;
}

/** Waits until the server lists `probe` (after it sent something). */
async function registered(t: Grader, server: ChatServer, probe: UdpProbe, what = "hb") {
  await pollUntil(
    t,
    `${probe.label} (${key(probe.addr)}) is registered after sending ${JSON.stringify(what)}`,
    () => server.clients(),
    (list) => list.some((c) => c.key === key(probe.addr)),
    {
      expected: `server.clients() to list ${key(probe.addr)}`,
      actual: () => describeClients(server),
      note: "a heartbeat registers its sender (registry.seen(from, clock.now())); " +
        "`hb` and `hb\\n` are heartbeats",
    },
  );
}

/** Each probe sends `hb` and is registered before the next one joins (join order). */
async function join(t: Grader, server: ChatServer, probes: UdpProbe[]): Promise<void> {
  for (const probe of probes) {
    await probe.send("hb", server.addr);
    await registered(t, server, probe);
  }
}

/** Why a datagram that arrived instead of the expected one is wrong, when we can tell. */
function explainChat(receiver: UdpProbe, extra?: (got: Datagram) => string | undefined) {
  return (got: Datagram): string | undefined => {
    const own = `${key(receiver.addr)}: `;
    if (got.text.startsWith(own)) {
      return `that is ${receiver.label}'s own message coming back: a message goes to every ` +
        "registered client except its sender";
    }
    if (/: hb\r?\n$/.test(got.text)) {
      return "a heartbeat was forwarded as if it were a chat message: `hb` only registers or " +
        "refreshes its sender, nobody else hears it";
    }
    if (/: quit\r?\n$/.test(got.text)) return "`quit` was forwarded: it only removes its sender";
    if (got.text.includes(STRANGER_MARK)) {
      return "that message came from an address that was not registered (a stranger, or a " +
        "client that had expired): only a heartbeat lets a client in; a message from anyone " +
        "else is dropped — forwarded, it would make your server an amplifier";
    }
    if (!got.text.endsWith("\n")) {
      return 'forwarded messages are "<host>:<port>: <text>\\n" — with the newline';
    }
    return extra?.(got);
  };
}

/** `sender` says `text`; each of `hearers` must receive it next. */
async function say(
  server: ChatServer,
  sender: UdpProbe,
  text: string,
  hearers: UdpProbe[],
  extra?: (receiver: UdpProbe) => ((got: Datagram) => string | undefined) | undefined,
): Promise<void> {
  await sender.send(text, server.addr);
  const line = `${key(sender.addr)}: ${text}\n`;
  for (const hearer of hearers) {
    await hearer.expectNext(line, {
      step: `${hearer.label} receives ${sender.label}'s ${JSON.stringify(text)}`,
      explain: explainChat(hearer, extra?.(hearer)),
      note: `${sender.label} and ${hearer.label} are both registered, so ${hearer.label} gets ` +
        `"${key(sender.addr)}: ${text}\\n"`,
    });
  }
}

// ─── Part 1a: the registry ──────────────────────────────────────────────────

suite.test("ClientRegistry keeps join order, refreshes on seen, and leaves the sender out", async (t) => {
  const { ClientRegistry } = await load(t);
  const registry = new ClientRegistry(TIMEOUT_MS);
  const [a, b, c] = [udpAddr(5001), udpAddr(5002), udpAddr(5003)];
  const isNew = await t.step("registry.seen(A, 0) for a new client", () => registry.seen(a, 0));
  t.expectEqual(isNew, true, "registry.seen(A, 0) returns", "true: A was not registered yet");
  await t.step("registry.seen(B, 5); registry.seen(C, 7)", () => {
    registry.seen(b, 5);
    registry.seen(c, 7);
  });
  const again = await t.step("registry.seen(A, 40) for a known client", () => registry.seen(a, 40));
  t.expectEqual(again, false, "registry.seen(A, 40) returns", "false: A was registered already");
  t.expectEqual(
    registry.list().map((entry) => [entry.key, entry.lastSeen]),
    [["127.0.0.1:5001", 40], ["127.0.0.1:5002", 5], ["127.0.0.1:5003", 7]],
    "registry.list() after seen(A,0), seen(B,5), seen(C,7), seen(A,40)",
    "a known client keeps its place and gets lastSeen = now; a new one joins at the end",
  );
  const forB = await t.step("registry.recipients(B)", () => registry.recipients(b));
  t.expectEqual(
    keys(forB),
    ["127.0.0.1:5001", "127.0.0.1:5003"],
    "who gets B's message",
    "everyone registered except the sender (B), in join order",
  );
  const removed = await t.step("registry.remove(B)", () => registry.remove(b));
  const twice = await t.step("registry.remove(B) again", () => registry.remove(b));
  t.expectEqual([removed, twice], [true, false], "remove(B), then remove(B) again, return");
  t.expectEqual(
    keys(registry.list()),
    ["127.0.0.1:5001", "127.0.0.1:5003"],
    "list() after remove(B)",
  );
  const first = await t.step("registry.remove(A), the first in the list", () => registry.remove(a));
  t.expectEqual(first, true, "registry.remove(A) returns", "A was registered (at index 0)");
  t.expectEqual(keys(registry.list()), ["127.0.0.1:5003"], "list() after remove(A)");

  // Same port, other host: a different client (the key is host *and* port).
  const hosts = new ClientRegistry(TIMEOUT_MS);
  const here: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: 5001 };
  const there: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.2", port: 5001 };
  await t.step("on a new registry: seen(127.0.0.1:5001, 0); seen(127.0.0.2:5001, 0)", () => {
    hosts.seen(here, 0);
    hosts.seen(there, 0);
  });
  const forHere = await t.step("registry.recipients(127.0.0.1:5001)", () => hosts.recipients(here));
  t.expectEqual(
    { list: keys(hosts.list()), recipients: keys(forHere) },
    { list: ["127.0.0.1:5001", "127.0.0.2:5001"], recipients: ["127.0.0.2:5001"] },
    "list() and recipients(127.0.0.1:5001) with two clients on port 5001 of two hosts",
    "a client is its address: host and port (addressKey). Two hosts may use the same port; " +
      "compare the whole key, not the port alone",
  );
});

suite.test("ClientRegistry.expire removes every silent client, also two side by side", async (t) => {
  const { ClientRegistry } = await load(t);
  const registry = new ClientRegistry(TIMEOUT_MS);
  const names = ["A", "B", "C", "D", "E"];
  const addrs = names.map((_, i) => udpAddr(6001 + i));
  const nameOf = (k: string) => names[addrs.findIndex((addr) => key(addr) === k)] ?? k;
  await t.step("A, B, C, D, E join at 0 ms; A, D, E are heard again at 50 ms", () => {
    for (const addr of addrs) registry.seen(addr, 0);
    for (const i of [0, 3, 4]) registry.seen(addrs[i], 50);
  });
  const swept = await t.step("registry.expire(101)", () => registry.expire(101));
  const left = registry.list().map((entry) => nameOf(entry.key));
  const sweptNames = swept.map((entry) => nameOf(entry.key));
  const skipped = sweptNames.includes("B") && !sweptNames.includes("C") && left.includes("C");
  t.expectEqual(
    { expired: sweptNames, left },
    { expired: ["B", "C"], left: ["A", "D", "E"] },
    "expire(101): B and C were silent 101 ms (> 100), A, D and E only 51 ms",
    skipped
      ? "C was skipped. It sat right after B: removing B from the array while walking it " +
        "forward slid C into B's slot, and the loop stepped past it. Decide first, remove " +
        "after (or walk backwards) — see “Changing a list while you walk it” in the doc"
      : "expire(now) removes and returns every client with now - lastSeen > timeoutMs, in join order",
  );
  const rest = await t.step("registry.expire(151)", () => registry.expire(151));
  t.expectEqual(
    { expired: rest.map((entry) => nameOf(entry.key)), left: keys(registry.list()) },
    { expired: ["A", "D", "E"], left: [] },
    "expire(151): A, D and E have now been silent 101 ms: all three go, side by side",
  );

  const edge = new ClientRegistry(TIMEOUT_MS);
  await t.step("on a new registry: seen(A, 0)", () => edge.seen(addrs[0], 0));
  const atLimit = await t.step("expire(100)", () => edge.expire(100));
  t.expectEqual(
    keys(atLimit),
    [],
    "expire(100) after seen(A, 0)",
    "silent for exactly timeoutMs is not silent for *longer* than timeoutMs: A stays (use >)",
  );
  const past = await t.step("expire(101)", () => edge.expire(101));
  t.expectEqual(keys(past), ["127.0.0.1:6001"], "expire(101) after seen(A, 0)");
});

suite.test("ClientRegistry.refresh refreshes a member and lets nobody in", async (t) => {
  const { ClientRegistry } = await load(t);
  const registry = new ClientRegistry(TIMEOUT_MS);
  const [a, b, stranger] = [udpAddr(7001), udpAddr(7002), udpAddr(7003)];
  await t.step("registry.seen(A, 0); registry.seen(B, 5)", () => {
    registry.seen(a, 0);
    registry.seen(b, 5);
  });
  const known = await t.step("registry.refresh(B, 30) for a member", () => registry.refresh(b, 30));
  const unknown = await t.step(
    "registry.refresh(S, 40) for an address that never sent a heartbeat",
    () => registry.refresh(stranger, 40),
  );
  t.expectEqual(
    [known, unknown],
    [true, false],
    "refresh(B, 30), then refresh(S, 40), return",
    "true for a registered client, false for any other address",
  );
  t.expectEqual(
    registry.list().map((entry) => [entry.key, entry.lastSeen]),
    [["127.0.0.1:7001", 0], ["127.0.0.1:7002", 30]],
    "registry.list() after seen(A,0), seen(B,5), refresh(B,30), refresh(S,40)",
    "refresh sets a member's lastSeen to now and keeps its place; it registers nobody: a chat " +
      "message from a stranger must not make it a member (only a heartbeat does)",
  );
});

// ─── Part 1b: the chat server ───────────────────────────────────────────────

suite.test("the server forwards each message to every other client, never to the sender", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  const [a, b, c] = ["A", "B", "C"].map((label) => openUdpProbe(t, label));
  await join(t, server, [a, b, c]);
  await say(server, a, "hello from A", [b, c]);
  await say(server, b, "hi, B here", [a, c]);
  await say(server, c, "C too — ünïcödé ✓", [a, b]);
  await say(server, a, "bye", [b, c]);
  await say(server, b, "last word", [a, c]);
  // As nc sends it: one trailing newline, which is not part of the text; the spaces are.
  await c.send("  indented, from nc\n", server.addr);
  for (const hearer of [a, b]) {
    await hearer.expectNext(`${key(c.addr)}:   indented, from nc\n`, {
      step: `${hearer.label} receives C's "  indented, from nc\\n"`,
      explain: explainChat(hearer),
      note: "remove exactly one trailing \\n (datagramText does) and keep the rest of the text " +
        "as it is, leading spaces included: no trim()",
    });
  }
  await t.step("server.close()", () => server.close());
  await t.step("server.close() a second time (it does nothing)", () => server.close(), {
    note: CLOSE_AGAIN_NOTE,
  });
  expectNoTimers(t, clock, "server.close()", {
    list: false,
    note: "close() must clearInterval the sweep timer, or a real server keeps running it forever",
  });
});

suite.test("heartbeats register a client and are never forwarded", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  const [a, b] = ["A", "B"].map((label) => openUdpProbe(t, label));
  await a.send("hb", server.addr);
  await registered(t, server, a);
  await b.send("hb\n", server.addr);
  await registered(t, server, b, "hb\\n");
  await a.send("hb", server.addr);
  await say(server, a, "after my heartbeat", [b]);
  await b.send("hb", server.addr);
  await b.send("hb\n", server.addr);
  await say(server, b, "B speaks at last", [a]);
});

suite.test("a silent client expires and gets nothing more; heartbeats keep the others", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  // C and D join side by side and stay silent: they must expire in the same sweep.
  const [a, c, d, b] = ["A", "C", "D", "B"].map((label) => openUdpProbe(t, label));
  await join(t, server, [a, c, d, b]);
  await advance(t, clock, 60);
  for (const probe of [a, b]) {
    await probe.send("hb", server.addr);
    await pollUntil(
      t,
      `${probe.label}'s heartbeat at 60 ms refreshes its lastSeen`,
      () => server.clients().find((entry) => entry.key === key(probe.addr))?.lastSeen,
      (lastSeen) => lastSeen === 60,
      {
        expected: `${probe.label}'s lastSeen to become 60 (the fake clock's now())`,
        actual: () => describeClients(server, clock),
        note: "a heartbeat refreshes its sender: registry.seen(from, clock.now())",
      },
    );
  }
  await advance(t, clock, 60);
  const silent = [c, d].map((probe) => `${probe.label} (${key(probe.addr)})`).join(" and ");
  await pollUntil(
    t,
    "the sweeps up to 120 ms expire C and D, and only them",
    () => server.clients(),
    (list) => keys(list).join() === [key(a.addr), key(b.addr)].join(),
    {
      expected: `only A and B registered: ${silent} have been silent 120 ms ` +
        `(timeoutMs ${TIMEOUT_MS}, a sweep every ${SWEEP_MS} ms), A and B only 60 ms`,
      actual: () => describeClients(server, clock),
      note: "every sweepMs of the clock, registry.expire(clock.now()) must remove every client " +
        "silent longer than timeoutMs — two side by side too",
    },
  );
  await say(server, a, "C and D are gone", [b]);
  for (const probe of [c, d]) {
    await probe.send("hb", server.addr);
    await registered(t, server, probe);
  }
  const expiredNote = (receiver: UdpProbe) => (got: Datagram) =>
    got.text.includes("C and D are gone")
      ? `${receiver.label} had been silent 120 ms (> timeoutMs ${TIMEOUT_MS}) when A said that: ` +
        "an expired client gets nothing more until it speaks again"
      : undefined;
  await say(server, b, "welcome back", [a, c, d], (receiver) => expiredNote(receiver));
});

suite.test("quit leaves at once and is never forwarded", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  const [a, b, c] = ["A", "B", "C"].map((label) => openUdpProbe(t, label));
  await join(t, server, [a, b, c]);
  await b.send("quit", server.addr);
  await pollUntil(
    t,
    "B is gone right after its quit (the clock has not moved)",
    () => server.clients(),
    (list) => !keys(list).includes(key(b.addr)),
    {
      expected: `${key(b.addr)} no longer registered`,
      actual: () => describeClients(server, clock),
      note: "`quit` removes its sender at once (registry.remove), without waiting for expiry",
    },
  );
  await say(server, a, "while B is away", [c]);
  await b.send("hb", server.addr);
  await registered(t, server, b);
  const quitNote = () => (got: Datagram) =>
    got.text.includes("while B is away")
      ? "B had quit when A said that: a client that left gets nothing until it speaks again"
      : undefined;
  await say(server, a, "welcome back, B", [b, c], quitNote);
  await say(server, b, "thanks", [a, c]);
  await c.send("quit\n", server.addr);
  await pollUntil(
    t,
    'C is gone right after "quit\\n" (as nc sends it)',
    () => server.clients(),
    (list) => !keys(list).includes(key(c.addr)),
    {
      expected: `${key(c.addr)} no longer registered`,
      actual: () => describeClients(server, clock),
      note: "one trailing \\n is not part of the text: compare datagramText(bytes) with quit",
    },
  );
});

suite.test("only a heartbeat lets a client in: a stranger's message reaches nobody", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  const [a, b, s] = ["A", "B", "stranger"].map((label) => openUdpProbe(t, label));
  await join(t, server, [a, b]);
  const strangerNote = (receiver: UdpProbe) => (got: Datagram) =>
    got.text === TOO_LONG_NOTICE
      ? `${receiver.label} got the too-long notice: only a member's message too long to forward ` +
        "earns it. The stranger's 65,500 bytes came before it joined: a datagram from a " +
        "stranger gets no answer at all, whatever its length (drop it before anything else)"
      : got.text.includes(STRANGER_MARK)
      ? `${receiver.label} got a message from an address that never sent a heartbeat: only ` +
        "`hb` registers a client; anything else from a stranger is dropped (no forward, no " +
        "answer) — otherwise every datagram from any port makes a member who gets everyone's " +
        "messages, and the server amplifies"
      : undefined;
  await s.send(`hello ${STRANGER_MARK}`, server.addr);
  // Too long to forward, from a stranger: no notice either (a stranger gets no answer at all).
  await s.send(`${STRANGER_MARK}${"x".repeat(65_500 - STRANGER_MARK.length)}`, server.addr);
  await s.send("quit", server.addr);
  await s.send(`hello again ${STRANGER_MARK}\n`, server.addr);
  await say(server, b, "members only", [a], strangerNote);
  await say(server, a, "still members only", [b], strangerNote);
  t.expectEqual(
    keys(server.clients()),
    [key(a.addr), key(b.addr)],
    "server.clients() after the stranger's messages (handled before B spoke)",
    "a chat message registers nobody: registry.refresh(from, now) returns false for a stranger, " +
      "and then the datagram is dropped",
  );
  // A member's message refreshes it as a heartbeat does.
  await advance(t, clock, 60);
  await say(server, a, "A speaks at 60 ms", [b], strangerNote);
  await pollUntil(
    t,
    "A's message at 60 ms refreshes its lastSeen",
    () => server.clients().find((entry) => entry.key === key(a.addr))?.lastSeen,
    (lastSeen) => lastSeen === 60,
    {
      expected: "A's lastSeen to become 60 (the fake clock's now())",
      actual: () => describeClients(server, clock),
      note: "a message from a member proves it is alive: registry.refresh(from, clock.now())",
    },
  );
  await advance(t, clock, 60);
  await pollUntil(
    t,
    "at 120 ms B (silent since 0 ms) has expired, A (heard at 60 ms) has not",
    () => keys(server.clients()),
    (list) => list.join() === key(a.addr),
    {
      expected: `only A (${key(a.addr)}) registered`,
      actual: () => describeClients(server, clock),
      note: "every sweepMs, registry.expire(clock.now()) removes who has been silent longer " +
        "than timeoutMs; a member's message counts as hearing from it",
    },
  );
  // An expired client is a stranger again until its next heartbeat.
  await b.send(`B is back? ${STRANGER_MARK}`, server.addr);
  await s.send("hb", server.addr);
  await registered(t, server, s);
  await say(server, a, "who is here?", [s], strangerNote);
  t.expectEqual(
    keys(server.clients()),
    [key(a.addr), key(s.addr)],
    "server.clients() after expired B's message and the stranger's heartbeat",
    "B had expired: its message is dropped and does not let it back in; the heartbeat does",
  );
  await b.send("hb", server.addr);
  await registered(t, server, b);
  await say(server, b, "B is back, properly", [a, s], strangerNote);
});

suite.test("a message too long to forward: only its sender hears, with a notice", async (t) => {
  const clock = new ManualClock();
  const server = await startServer(t, clock);
  const [a, b] = ["A", "B"].map((label) => openUdpProbe(t, label));
  await join(t, server, [a, b]);
  const prefix = `${key(a.addr)}: `;
  const fit = MAX_UDP_PAYLOAD - prefix.length - 1; // "<prefix><text>\n" is exactly 65,507 bytes
  const limitNote = `the forwarded datagram "${prefix}<text>\\n" may hold at most ` +
    `${MAX_UDP_PAYLOAD} bytes: from A that leaves ${fit} bytes of text (UTF-8 bytes, not ` +
    "characters; one trailing \\n is not part of the text)";
  const forwardsWhole = async (datagram: string, what: string) => {
    await a.send(datagram, server.addr);
    const line = `${prefix}${datagram.replace(/\n$/, "")}\n`;
    const got = await b.next({ step: `B receives A's ${what}`, note: limitNote });
    t.check(got.text === line, {
      step: `B receives A's ${what}`,
      expected: `${line.length} bytes: "${prefix}" + ${line.length - prefix.length - 1} bytes of ` +
        "text + \\n",
      actual: got.text === TOO_LONG_NOTICE
        ? "the too-long notice, sent to B"
        : `${got.bytes.length} bytes from ${key(got.from)}: ${
          JSON.stringify(got.text.slice(0, 60))
        }…`,
      note: got.bytes.length < line.length
        ? "the datagram was cut: receive into a buffer of MAX_UDP_PAYLOAD bytes"
        : limitNote,
    });
  };
  await forwardsWhole("x".repeat(fit), `text of ${fit} bytes (the forward is exactly 65,507)`);
  await forwardsWhole(`${"y".repeat(fit)}\n`, `text of ${fit} bytes and a trailing \\n`);
  const refused = [
    { datagram: "z".repeat(fit + 1), what: `text of ${fit + 1} bytes (one too many)` },
    {
      datagram: "é".repeat(Math.ceil((fit + 1) / 2)),
      what: `${Math.ceil((fit + 1) / 2)} × "é": fewer characters than ${fit}, but ` +
        `${2 * Math.ceil((fit + 1) / 2)} bytes`,
    },
    {
      datagram: new Uint8Array(22_000).fill(0xff),
      what: "22,000 bytes of 0xff: not UTF-8, each decodes to U+FFFD (3 bytes)",
    },
  ];
  for (const { datagram, what } of refused) {
    await a.send(datagram, server.addr);
    await a.expectNext(TOO_LONG_NOTICE, {
      step: `A sent ${what}: A gets the notice`,
      explain: (got) =>
        got.text.startsWith(prefix)
          ? "A's own message came back: the sender of a message too long to forward gets " +
            `${JSON.stringify(TOO_LONG_NOTICE)}, and only the sender`
          : undefined,
      note: `${limitNote}. A longer message is not forwarded: its sender gets ` +
        `${JSON.stringify(TOO_LONG_NOTICE)} instead (send() of more than ${MAX_UDP_PAYLOAD} ` +
        "bytes fails with “Message too long”, and nobody would ever know)",
    });
  }
  await say(
    server,
    a,
    "after the long ones",
    [b],
    (receiver) => (got: Datagram) =>
      got.text.startsWith(prefix)
        ? `${receiver.label} got part or all of a message too long to forward: nothing of it ` +
          "goes to the others (no cut copy either)"
        : got.text === TOO_LONG_NOTICE
        ? `the notice went to ${receiver.label}: it is for the sender alone`
        : undefined,
  );
});

/**
 * Runs `start` with `Deno.listenDatagram` swapped for one whose socket counts
 * the buffers its `receive()` calls fill: a call without a buffer makes Deno
 * allocate a fresh 65,507-byte one.
 */
function watchReceives<T>(start: () => T): { value: T; receives: ReceiveCount } {
  const receives: ReceiveCount = { calls: 0, withoutBuffer: 0, buffers: new Set() };
  const value = whileSwapped(
    "listenDatagram",
    (real) =>
      ((options: Deno.UdpListenOptions & { transport: "udp" }) => {
        const socket = real(options);
        return overriding(socket, {
          receive: (buffer?: Uint8Array) => {
            receives.calls++;
            if (buffer === undefined) receives.withoutBuffer++;
            else receives.buffers.add(buffer.buffer);
            return socket.receive(buffer);
          },
        });
      }) as typeof Deno.listenDatagram,
    start,
  );
  return { value, receives };
}

interface ReceiveCount {
  calls: number;
  withoutBuffer: number;
  buffers: Set<ArrayBufferLike>;
}

suite.test("a flood costs the chat server no memory: one receive buffer for every datagram", async (t) => {
  const { startChatServer } = await load(t);
  const clock = new ManualClock();
  const { value: server, receives } = await t.step(
    `startChatServer({ timeoutMs: ${TIMEOUT_MS}, sweepMs: ${SWEEP_MS}, clock: a fake clock })`,
    () =>
      watchReceives(() =>
        startChatServer({ hostname: "127.0.0.1", timeoutMs: TIMEOUT_MS, sweepMs: SWEEP_MS, clock })
      ),
  );
  t.defer(() => server.close());
  const flood = openUdpProbe(t, "flooder");
  const junk = new Uint8Array(100).fill(0x6a);
  await t.step("the flooder (not a member) sends 300 datagrams of 100 bytes", async () => {
    for (let i = 0; i < 300; i++) await flood.socket.send(junk, server.addr);
  });
  // The kernel drops what does not fit in the socket's queue: count what was received.
  await t.eventually("your server receives 50 of them", () => receives.calls > 50, {
    expected: "more than 50 receive() calls",
    actual: () => `${receives.calls} receive() call(s)`,
    note: "receive datagrams in a loop, one after another",
  });
  const allocated = receives.withoutBuffer + receives.buffers.size;
  t.check(allocated <= 2, {
    step: `the receive buffers your server used for the ${receives.calls} datagrams it received`,
    expected: "at most 2 buffers allocated: one buffer of MAX_UDP_PAYLOAD bytes, made once " +
      "and reused for every receive",
    actual: `${receives.calls} receive() call(s): ${receives.withoutBuffer} without a buffer ` +
      `(Deno allocates 65,507 bytes for each), ${receives.buffers.size} buffer(s) of your own`,
    note: "a datagram is handled to the end before the next receive, so one buffer does for all: " +
      "socket.receive(buffer). A fresh 64 KiB buffer per datagram makes a flood of tiny " +
      "datagrams cost tens of MB before the garbage collector catches up",
  });
});

suite.test("the chat server binds the port it is given and sweeps every timeoutMs / 4 by default", async (t) => {
  const { startChatServer } = await load(t);
  const clock = new ManualClock();
  const port = freePort("udp");
  const server = await t.step(
    `startChatServer({ port: ${port}, timeoutMs: ${TIMEOUT_MS}, clock: a fake clock }) ` +
      "(no hostname, no sweepMs)",
    () => startChatServer({ port, timeoutMs: TIMEOUT_MS, clock }),
  );
  t.defer(() => server.close());
  t.check(server.addr.hostname === "127.0.0.1" && server.addr.port === port, {
    step: `startChatServer({ …, port: ${port} }).addr`,
    expected: `127.0.0.1:${port}: the default hostname and the port it was given`,
    actual: JSON.stringify(server.addr),
    note: "bind options.hostname and options.port (defaults 127.0.0.1 and 0)",
  });
  const a = openUdpProbe(t, "A");
  await a.send("hb", { hostname: "127.0.0.1", port });
  await registered(t, server, a);
  await advance(t, clock, TIMEOUT_MS);
  t.check(keys(server.clients()).includes(key(a.addr)), {
    step: `A, silent since 0 ms, at ${TIMEOUT_MS} ms`,
    expected: "A still registered: silent for exactly timeoutMs, not longer",
    actual: describeClients(server, clock),
  });
  await advance(t, clock, TIMEOUT_MS / 4);
  t.check(!keys(server.clients()).includes(key(a.addr)), {
    step: `A, silent since 0 ms, at ${TIMEOUT_MS + TIMEOUT_MS / 4} ms`,
    expected: `A expired: without sweepMs the sweep runs every timeoutMs / 4 (${
      TIMEOUT_MS / 4
    } ms), so a silent client is gone by timeoutMs + ${TIMEOUT_MS / 4} ms`,
    actual: describeClients(server, clock),
    note: "options.sweepMs ?? options.timeoutMs / 4",
  });

  // Where ::1 is missing (IPv6 turned off), the rest of the check still holds.
  if (!IPV6_LOOPBACK) return;
  const v6 = await t.step(
    `startChatServer({ hostname: "::1", timeoutMs: ${TIMEOUT_MS}, clock: a fake clock })`,
    () => startChatServer({ hostname: "::1", timeoutMs: TIMEOUT_MS, clock }),
  );
  t.defer(() => v6.close());
  t.check(v6.addr.hostname === "::1", {
    step: 'startChatServer({ hostname: "::1", … }).addr',
    expected: "hostname ::1: the hostname it was given",
    actual: JSON.stringify(v6.addr),
    note: "bind options.hostname (default 127.0.0.1), not always 127.0.0.1",
  });
  const b = openUdpProbe(t, "B on ::1", { hostname: "::1" });
  await b.send("hb", { hostname: "::1", port: v6.addr.port });
  const bKey = `[::1]:${b.addr.port}`;
  await pollUntil(
    t,
    `B (${bKey}) is registered on the ::1 server after sending "hb"`,
    () => keys(v6.clients()),
    (list) => list.includes(bKey),
    {
      expected: `server.clients() to list ${bKey}`,
      actual: () => describeClients(v6),
      note: "the server receives on the address it was given; an IPv6 client's key is " +
        "addressKey(addr), with brackets",
    },
  );
});

// ─── Part 1c: the chat client ───────────────────────────────────────────────

async function startClient(t: Grader, server: UdpProbe, clock: ManualClock, heard: string[]) {
  const { startChatClient } = await load(t);
  const client = await t.step(
    `startChatClient({ server: ${key(server.addr)}, serverTimeoutMs: 90, clock: a fake clock })`,
    () =>
      startChatClient({
        server: { hostname: "127.0.0.1", port: server.addr.port },
        serverTimeoutMs: 90,
        clock,
        onMessage: (text) => void heard.push(text),
      }),
  );
  t.defer(() => client.close());
  return client;
}

suite.test("the client registers at once, then heartbeats every serverTimeoutMs / 3", async (t) => {
  const clock = new ManualClock();
  const server = openUdpProbe(t, "server");
  const client = await startClient(t, server, clock, []);
  const beatNote =
    "the client sends `hb` every serverTimeoutMs / 3 = 30 ms of the clock it was given " +
    "(clock.setInterval), whatever the user does";
  await server.expectNext("hb", {
    step: "your client sends hb at once, before any timer fires",
    note: "send one `hb` when the client starts, so the server knows it before it says anything",
  });
  for (const at of [30, 60, 90]) {
    await advance(t, clock, 30);
    await server.expectNext("hb", { step: `a heartbeat at ${at} ms`, note: beatNote });
  }
  await t.step('client.send("hello")', () => client.send("hello"));
  await server.expectNext("hello", {
    step: "the message arrives, with no heartbeat before it",
    note: beatNote,
  });
  await advance(t, clock, 29);
  await t.step('client.send("still typing") at 119 ms', () => client.send("still typing"));
  await server.expectNext("still typing", {
    step: "no heartbeat between 90 and 119 ms",
    explain: (got) =>
      got.text === "hb" ? "a heartbeat came less than 30 ms after the last one" : undefined,
    note: beatNote,
  });
  await advance(t, clock, 1);
  await server.expectNext("hb", { step: "a heartbeat at 120 ms", note: beatNote });
  await t.step("client.close()", () => client.close());
  await server.expectNext("quit", {
    step: "close() says quit",
    note: "close() sends `quit`, so the server drops the client at once instead of after a timeout",
  });
  await t.step("client.close() a second time (it does nothing)", () => client.close(), {
    note: CLOSE_AGAIN_NOTE,
  });
  expectNoTimers(t, clock, "client.close()", {
    list: false,
    note: "close() must clearInterval the heartbeat, or it keeps sending into a closed socket",
  });
});

suite.test("the client passes the server's messages on and ignores other senders", async (t) => {
  const clock = new ManualClock();
  const server = openUdpProbe(t, "server");
  const stranger = openUdpProbe(t, "stranger");
  const heard: string[] = [];
  const client = await startClient(t, server, clock, heard);
  await server.expectNext("hb", { step: "your client registers with hb" });
  const first = "127.0.0.1:4242: hello there";
  const second = "127.0.0.1:4242:  ünïcödé ✓ and two spaces after  ";
  await stranger.send("127.0.0.1:6666: I am not the server\n", client.addr);
  await server.send(`${first}\n`, client.addr);
  await pollUntil(t, "onMessage is called", () => heard.length, (n) => n >= 1, {
    expected: "a call of onMessage for the server's datagram",
    actual: () => "no call of onMessage",
    note: "receive datagrams in a loop and hand each one from the server to onMessage",
  });
  t.expectEqual(
    heard[0],
    first,
    "the first text your client passed to onMessage",
    heard[0]?.includes("not the server")
      ? `that datagram came from the stranger (${key(stranger.addr)}), not from the server: ` +
        "UDP lets any program send to your port, so compare the sender with the server's address"
      : "pass the datagram's text without its trailing \\n",
  );
  await server.send(`${second}\n`, client.addr);
  await pollUntil(t, "onMessage is called again", () => heard.length, (n) => n >= 2, {
    expected: "a second call of onMessage",
    actual: (n) => `${n} call(s)`,
  });
  t.expectEqual(
    heard,
    [first, second],
    "everything your client passed to onMessage",
    "only the server's datagrams, each once, in order, without the trailing \\n — and " +
      "nothing else removed: no trim(), the spaces are part of the text",
  );

  // A stranger on another host, with the server's port number: still not the server.
  const { startChatClient } = await load(t);
  const samePort = openUdpProbe(t, "stranger on the server's port");
  const elsewhere = { hostname: "127.0.0.2", port: samePort.addr.port };
  const receives = { calls: 0 };
  const heardThere: string[] = [];
  const there = await t.step(
    `startChatClient({ server: ${key(elsewhere)}, serverTimeoutMs: 90, clock: a fake clock }) ` +
      `while the stranger is on ${key(samePort.addr)}`,
    () =>
      whileSwapped(
        "listenDatagram",
        (real) =>
          ((options: Deno.UdpListenOptions & { transport: "udp" }) => {
            const socket = real(options);
            const receive = (buffer?: Uint8Array) => {
              receives.calls++;
              return socket.receive(buffer);
            };
            return overriding(socket, {
              receive,
              // The grader may not send to 127.0.0.2: what goes there counts as sent.
              send: (data: Uint8Array, addr: Deno.NetAddr) =>
                addr.hostname === elsewhere.hostname
                  ? Promise.resolve(data.length)
                  : socket.send(data, addr),
              [Symbol.asyncIterator]: async function* () {
                while (true) {
                  try {
                    yield await receive();
                  } catch (error) {
                    if (
                      error instanceof Deno.errors.BadResource ||
                      error instanceof Deno.errors.Interrupted
                    ) return;
                    throw error;
                  }
                }
              },
            });
          }) as typeof Deno.listenDatagram,
        () =>
          startChatClient({
            server: elsewhere,
            serverTimeoutMs: 90,
            clock,
            onMessage: (text) => void heardThere.push(text),
          }),
      ),
  );
  t.defer(() => there.close());
  await samePort.send("127.0.0.1:6666: same port, other host\n", there.addr);
  await pollUntil(
    t,
    "your client handles the stranger's datagram and receives again",
    () => receives.calls,
    (calls) => calls >= 2,
    {
      expected: "a receive() call after the stranger's datagram",
      actual: (calls) => `${calls} receive() call(s)`,
      note: "receive datagrams in a loop",
    },
  );
  await ioTurns();
  t.expectEqual(
    heardThere,
    [],
    `what your client (server ${key(elsewhere)}) passed to onMessage after a datagram from ` +
      key(samePort.addr),
    "the sender had the server's port but not its host: compare the whole address, hostname " +
      "and port, with the server's",
  );
});

// ─── Part 2: PING/PONG over TCP ─────────────────────────────────────────────

const IDLE_MS = 100;
const PONG_MS = 50;
const TIMERS_NOTE = "clear the idle and PONG timers when the connection ends, whatever the reason";

/** An AbortSignal that knows how many abort listeners are registered on it right now. */
function watchedSignal() {
  const controller = new AbortController();
  const signal = controller.signal;
  const live = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, listener: unknown, options?: unknown) => {
    if (type === "abort" && listener) live.add(listener);
    (add as (...args: unknown[]) => void)(type, listener, options);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, listener: unknown, options?: unknown) => {
    if (type === "abort") live.delete(listener);
    (remove as (...args: unknown[]) => void)(type, listener, options);
  }) as typeof signal.removeEventListener;
  return {
    controller,
    signal,
    /** Listeners added and not removed, plus an `onabort` handler if one is set. */
    live: () => live.size + (signal.onabort ? 1 : 0),
  };
}

/** What the grader saw the learner's code do with a supervised connection. */
interface ConnWatch {
  keepAlive: boolean[];
  /** read() calls still pending, and write() calls still pending. */
  readsPending: number;
  writesPending: number;
  /** Bytes the learner's writes took, in all (echoes and PINGs). */
  written: number;
  /** Bytes of echoes owed so far: every complete line read that is not a PONG, `\n` included. */
  echoDue: number;
  /** The most echo bytes still unwritten when a read() was called. */
  maxOwedAtRead: number;
  /** close() was called; writes the learner started after that. */
  closed: boolean;
  writesAfterClose: number;
}

/** Wraps `conn` so the grader can count what the learner's code does with it. */
function watchConn(conn: Deno.TcpConn): { watched: Deno.TcpConn; watch: ConnWatch } {
  const watch: ConnWatch = {
    keepAlive: [],
    readsPending: 0,
    writesPending: 0,
    written: 0,
    echoDue: 0,
    maxOwedAtRead: 0,
    closed: false,
    writesAfterClose: 0,
  };
  let line: number[] = []; // the start of the line being read, up to 6 bytes (enough for PONG\r)
  let lineLength = 0;
  const scan = (bytes: Uint8Array) => {
    for (const byte of bytes) {
      if (byte !== 0x0a) {
        if (line.length < 6) line.push(byte);
        lineLength++;
        continue;
      }
      const text = String.fromCharCode(...line);
      if (!(lineLength <= 5 && (text === "PONG" || text === "PONG\r"))) {
        watch.echoDue += lineLength + 1;
      }
      line = [];
      lineLength = 0;
    }
  };
  const watched = overriding(conn, {
    setKeepAlive: (on?: boolean) => {
      watch.keepAlive.push(on ?? true);
      conn.setKeepAlive(on);
    },
    read: async (buffer: Uint8Array) => {
      watch.maxOwedAtRead = Math.max(watch.maxOwedAtRead, watch.echoDue - watch.written);
      watch.readsPending++;
      try {
        const n = await conn.read(buffer);
        if (n) scan(buffer.subarray(0, n));
        return n;
      } finally {
        watch.readsPending--;
      }
    },
    write: async (bytes: Uint8Array) => {
      if (watch.closed) watch.writesAfterClose++;
      watch.writesPending++;
      try {
        const n = await conn.write(bytes);
        watch.written += n;
        return n;
      } finally {
        watch.writesPending--;
      }
    },
    close: () => {
      watch.closed = true;
      conn.close();
    },
  });
  return { watched, watch };
}

/**
 * A grader peer connected to a listener of the grader's own, and the end
 * that listener accepted, for learner code to run on.
 */
async function connectedPair(
  t: Grader,
  label: string,
  options: { resettable?: boolean; read?: boolean } = {},
): Promise<{ peer: Probe; conn: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().finally(() => listener.close());
  const peer = await t.connect(listener.addr, label, options);
  return { peer, conn: await accepted };
}

/** The grader's peer and the learner's superviseConnection on the accepted end. */
async function supervised(
  t: Grader,
  clock: ManualClock,
  extra: {
    signal?: AbortSignal;
    resettable?: boolean;
    label?: string;
    /** false: the peer never reads (send through `peer.conn` to keep the transcript small). */
    read?: boolean;
    /** Passed on when given; left out of the options when not (the default applies). */
    maxLineBytes?: number;
  } = {},
) {
  const { superviseConnection } = await load(t);
  const state: { running?: Promise<Lesson.ConnectionEnding> } = {};
  // Deferred first, so it runs last: after the peer has closed, wait for the function to return.
  t.defer(() => state.running?.catch(() => {}));
  const { peer, conn } = await connectedPair(t, extra.label ?? "peer", {
    resettable: extra.resettable,
    read: extra.read,
  });
  const { watched, watch } = watchConn(conn);
  const signal = extra.signal === undefined
    ? ""
    : extra.signal.aborted
    ? ", signal: already aborted"
    : ", signal";
  const maxLine = extra.maxLineBytes === undefined ? "" : `, maxLineBytes: ${extra.maxLineBytes}`;
  const options: Lesson.LivenessOptions = {
    idleMs: IDLE_MS,
    pongTimeoutMs: PONG_MS,
    clock,
    signal: extra.signal,
  };
  if (extra.maxLineBytes !== undefined) options.maxLineBytes = extra.maxLineBytes;
  ({ running: state.running } = await start(
    t,
    `superviseConnection(conn, { idleMs: ${IDLE_MS}, pongTimeoutMs: ${PONG_MS}, clock${signal}${maxLine} })`,
    () => superviseConnection(watched, options),
  ));
  return { peer, running: state.running, keepAlive: watch.keepAlive, watch };
}

async function echoes(peer: Probe, line: string, note?: string): Promise<void> {
  await peer.send(line);
  await peer.expect(line, {
    step: `your server echoes ${JSON.stringify(line)}`,
    note: note ?? "every line from the peer comes back as it was sent (PONG lines excepted)",
  });
}

suite.test("a peer that answers PING stays connected across several idle periods", async (t) => {
  const clock = new ManualClock();
  const { peer, running, keepAlive } = await supervised(t, clock);
  await echoes(peer, "hello\n");
  await advance(t, clock, IDLE_MS);
  for (const round of [1, 2, 3]) {
    await peer.expect("PING\n", {
      step: `PING after ${IDLE_MS} ms without a byte (round ${round})`,
      note: round === 1
        ? `after idleMs (${IDLE_MS}) of the clock without hearing from the peer, write PING\\n`
        : `the peer answered the last PING, so the connection stays open, and ${IDLE_MS} ms ` +
          "after that answer it is PINGed again",
    });
    // Round 3 answers as nc -C or telnet would: PONG\r\n.
    const pong = round === 3 ? "PONG\r\n" : "PONG\n";
    await peer.send(`${pong}round ${round}\n`, { split: round === 2 ? "bytes" : "whole" });
    await peer.expect(`round ${round}\n`, {
      step: `the line after ${JSON.stringify(pong)} comes back, the PONG does not`,
      note: "PONG is proof of life, not data: do not echo it" +
        (round === 3 ? ' — "PONG\\r\\n" is a PONG too (lines may end in \\r\\n)' : ""),
    });
    // Past the PONG deadline of this PING, then on to the next idle deadline.
    await advance(t, clock, PONG_MS);
    await advance(t, clock, IDLE_MS - PONG_MS);
  }
  await peer.expect("PING\n", {
    step: "a fourth PING",
    note: "the peer answered every PING: it stays connected",
  });
  await peer.close();
  const ending = await t.step("superviseConnection returns after the peer closes", () => running);
  t.expectEqual(ending, "peer closed", "what superviseConnection returned");
  t.check(keepAlive.includes(true), {
    step: "TCP keepalive on the supervised connection",
    expected: "conn.setKeepAlive(true) to have been called",
    actual: keepAlive.length ? `setKeepAlive(${keepAlive.join("), setKeepAlive(")})` : "no call",
    note: "kernel keepalive finds dead hosts (after ~2 h by default), PING finds dead " +
      "programs: turn both on — see the doc's “What TCP keepalive does” section",
  });
});

suite.test("any data from the peer counts as proof of life", async (t) => {
  const clock = new ManualClock();
  const shutdown = watchedSignal();
  const { peer, running } = await supervised(t, clock, { signal: shutdown.signal });
  await echoes(peer, "\n", "an empty line is a line too: echo it");
  await echoes(peer, "a\n");
  await advance(t, clock, 60);
  await echoes(peer, "b at 60 ms\n");
  await advance(t, clock, 60);
  await echoes(
    peer,
    "c at 120 ms\n",
    "the peer sent a line at 60 ms, so at 120 ms it has been quiet only 60 ms (< idleMs " +
      `${IDLE_MS}): no PING yet. Every byte from the peer restarts the idle deadline`,
  );
  await advance(t, clock, IDLE_MS);
  await peer.expect("PING\n", {
    step: `PING at 220 ms, ${IDLE_MS} ms after the last line`,
    note: "after idleMs of the clock without a byte from the peer, write PING\\n",
  });
  await echoes(peer, "data instead of PONG\n");
  await advance(t, clock, PONG_MS);
  await echoes(
    peer,
    "still open\n",
    "a line that answers a PING is as good as a PONG: the peer is alive, keep the connection",
  );
  await peer.close();
  const ending = await t.step("superviseConnection returns after the peer closes", () => running);
  t.expectEqual(ending, "peer closed", "what superviseConnection returned");
  expectNoTimers(t, clock, "the peer closed (its idle deadline was still ahead)", {
    note: "when the connection ends, whatever the reason, clear the idle and PONG timers: a " +
      "forgotten idle timer later PINGs a closed connection, and a real one keeps the program alive",
  });
  t.check(shutdown.live() === 0, {
    step: "look at options.signal after superviseConnection returned",
    expected: "no abort listener of yours left on it",
    actual: `${shutdown.live()} still registered`,
    note: "the server's signal outlives every connection: remove your abort listener when the " +
      "connection ends (removeEventListener in a finally), or a long-running server keeps one " +
      "closure per connection it ever served",
  });
});

suite.test("part of a line is proof of life too", async (t) => {
  const clock = new ManualClock();
  const { peer, running } = await supervised(t, clock);
  await echoes(peer, "first\n");
  await advance(t, clock, 60);
  await peer.send("the first half, ");
  await ioTurns(); // your read has returned those bytes by now
  await advance(t, clock, 60);
  await peer.send("the second half\n");
  await peer.expect("the first half, the second half\n", {
    step:
      "the line sent in two parts (at 60 ms and 120 ms) comes back whole, with no PING before it",
    note:
      "the peer sent part of a line at 60 ms: any byte is proof of life, a whole line or not, so " +
      `at 120 ms it had been quiet only 60 ms (< idleMs ${IDLE_MS}). Restart the idle deadline ` +
      "after every read that returned bytes, not per complete line",
  });
  await advance(t, clock, IDLE_MS);
  await peer.expect("PING\n", {
    step: `PING at 220 ms, ${IDLE_MS} ms after the second half`,
    note: "after idleMs of the clock without a byte from the peer, write PING\\n",
  });
  await peer.close();
  await t.step("superviseConnection returns after the peer closes", () => running);
});

suite.test("a peer that resets the connection ends it: peer closed, no timer left", async (t) => {
  const clock = new ManualClock();
  const { peer, running } = await supervised(t, clock, { resettable: true });
  await echoes(peer, "hello\n");
  await advance(t, clock, IDLE_MS);
  await peer.expect("PING\n", {
    step: `PING after ${IDLE_MS} ms of silence`,
    note: "after idleMs of the clock without a byte from the peer, write PING\\n",
  });
  await peer.reset();
  const ending = await t.step(
    "superviseConnection returns after the peer reset the connection",
    () => running,
    {
      note:
        "a reset (RST) makes the pending read fail: that ends the connection like EOF does — return " +
        '"peer closed", do not let the error escape',
    },
  );
  t.expectEqual(ending, "peer closed", "what superviseConnection returned after a reset");
  expectNoTimers(t, clock, "superviseConnection returned", {
    expected: "no timer left scheduled (the PONG deadline was still ahead)",
    note: TIMERS_NOTE,
  });
});

suite.test("superviseConnection ends with shut down when its signal aborts, even before it began", async (t) => {
  const clock = new ManualClock();
  const shutdown = new AbortController();
  const { peer, running } = await supervised(t, clock, { signal: shutdown.signal });
  await echoes(peer, "hello\n");
  await t.step("abort the signal", () => shutdown.abort());
  await peer.expectEnd({
    step: "your side closes the connection when the signal aborts",
    note: "an abort of options.signal (server shutdown) ends the connection at once: close it",
  });
  t.expectEqual(
    await t.step("superviseConnection returns", () => running),
    "shut down",
    "what superviseConnection returned after the abort",
  );
  const late = await supervised(t, clock, { signal: shutdown.signal, label: "late peer" });
  await late.peer.expectEnd({
    step: "your side closes a connection whose signal had aborted before superviseConnection began",
    note:
      "an abort event fires once: a signal that is already aborted (signal.aborted) sends no more " +
      "events, so check it when you start",
  });
  t.expectEqual(
    await t.step("superviseConnection returns", () => late.running),
    "shut down",
    "what superviseConnection returned with an aborted signal",
  );
  expectNoTimers(t, clock, "both connections were shut down", { note: TIMERS_NOTE });
});

suite.test("a peer that does not answer PING is closed", async (t) => {
  const clock = new ManualClock();
  const { peer, running } = await supervised(t, clock);
  await echoes(peer, "hi, then silence\n");
  await advance(t, clock, IDLE_MS);
  await peer.expect("PING\n", {
    step: `PING after ${IDLE_MS} ms of silence`,
    note: "after idleMs of the clock without a byte from the peer, write PING\\n",
  });
  await advance(t, clock, PONG_MS);
  await peer.expectEnd({
    step: `your side closes the connection ${PONG_MS} ms after an unanswered PING`,
    note: `nothing came back within pongTimeoutMs (${PONG_MS}) of the PING: the peer is dead or ` +
      "hung, so close the connection (a PING nobody checks keeps a dead peer forever)",
  });
  const ending = await t.step("superviseConnection returns", () => running);
  t.expectEqual(ending, "no pong", "what superviseConnection returned");
  expectNoTimers(t, clock, "superviseConnection returned", {
    note: "clear the idle and PONG timers when the connection ends",
  });
});

const LINE_NOTE =
  "a line longer than maxLineBytes (its \\n not counted) is not echoed: close the " +
  'connection and return "line too long" — as soon as the unfinished line is longer, without ' +
  "waiting for its \\n (else one peer without newlines fills your memory)";

async function endsTooLong(
  t: Grader,
  peer: Probe,
  running: Promise<Lesson.ConnectionEnding>,
  what: string,
): Promise<void> {
  await peer.expectEnd({ step: `your side closes the connection after ${what}`, note: LINE_NOTE });
  const ending = await t.step("superviseConnection returns", () => running);
  t.expectEqual(ending, "line too long", `what superviseConnection returned after ${what}`);
}

suite.test("a line longer than maxLineBytes ends the connection, before its \\n comes", async (t) => {
  const clock = new ManualClock();
  const a = await supervised(t, clock, { maxLineBytes: 16, label: "A" });
  await echoes(
    a.peer,
    "0123456789abcdef\n",
    `a line of exactly maxLineBytes (16) is fine: echo it`,
  );
  await a.peer.send("0123456789ABCDEF\n", { split: "bytes" });
  await a.peer.expect("0123456789ABCDEF\n", {
    step: "16 bytes and \\n, one byte at a time, echoed",
    note: "a line of exactly maxLineBytes is fine, however it arrives",
  });
  await a.peer.send("ok\n0123456789ABCDEF\n");
  await a.peer.expect("ok\n0123456789ABCDEF\n", {
    step: 'one write of "ok\\n" and a line of 16 bytes: both echoed',
    note:
      "measure each line from its own start (after the \\n before it), not from the start of the read",
  });
  await a.peer.send("fedcba9876543210");
  await ioTurns(); // your read has returned the 16 bytes by now
  await a.peer.send("\n");
  await a.peer.expect("fedcba9876543210\n", {
    step: "16 bytes, then their \\n in a later write: echoed",
    note: "an unfinished line of exactly maxLineBytes is not too long yet: wait for its \\n",
  });
  await a.peer.send("0123456789abcdefg", { split: "bytes" });
  await endsTooLong(t, a.peer, a.running, "17 bytes without a \\n, one byte at a time");

  const b = await supervised(t, clock, { maxLineBytes: 16, label: "B" });
  await echoes(b.peer, "short\n");
  await b.peer.send(`${"x".repeat(17)}\nafter\n`);
  await endsTooLong(t, b.peer, b.running, 'one write of 17 bytes, "\\n", "after\\n"');

  const c = await supervised(t, clock, { label: "C (maxLineBytes left out)" });
  const longest = "L".repeat(8192);
  await c.peer.send(`${longest}\n`);
  await c.peer.expect(`${longest}\n`, {
    step: "a line of 8,192 bytes is echoed",
    note: "without maxLineBytes the longest line is DEFAULT_MAX_LINE_BYTES (8,192 bytes)",
  });
  await c.peer.send(`${longest}L\n`);
  await endsTooLong(t, c.peer, c.running, "a line of 8,193 bytes (maxLineBytes left out)");

  const d = await supervised(t, clock, { maxLineBytes: 16, label: "D" });
  await echoes(d.peer, "0123456789abcde\r\n", "15 bytes, \r and \n: the \r counts, 16 bytes");
  await d.peer.send(`${"x".repeat(16)}\r\n`);
  await endsTooLong(
    t,
    d.peer,
    d.running,
    '16 bytes, "\\r\\n" (with its \\r the line holds 17 bytes)',
  );
  expectNoTimers(t, clock, "the four connections ended", { note: TIMERS_NOTE });
});

/** Bytes the never-reading peer pushes at most (lines of 1 KiB). */
const PUSH_BYTES = 8 * 1024 * 1024;
/** Echo bytes that may still wait to be written when the learner reads again (the doc's bound). */
const MAX_QUEUED_BYTES = 64 * 1024;

suite.test("a peer that never reads: back-pressure, then the PING deadline; nothing written after", async (t) => {
  const clock = new ManualClock();
  const pushing = { done: false, pushed: 0, work: Promise.resolve() };
  // Deferred before the peer exists, so it runs after the peer's close: that ends the push.
  t.defer(() => pushing.work);
  const { peer, running, watch } = await supervised(t, clock, { read: false, label: "deaf peer" });
  let settled = false;
  running.finally(() => settled = true).catch(() => {});
  const line = encoder.encode("x".repeat(1023) + "\n");
  const chunk = new Uint8Array(64 * line.length);
  for (let i = 0; i < 64; i++) chunk.set(line, i * line.length);
  t.transcript.record(peer.label, "note", {
    detail: `sends up to ${PUSH_BYTES} bytes of 1 KiB lines, never reads (not shown byte by byte)`,
  });
  pushing.work = (async () => {
    try {
      while (pushing.pushed < PUSH_BYTES) {
        for (let at = 0; at < chunk.length;) at += await peer.conn.write(chunk.subarray(at));
        pushing.pushed += chunk.length;
      }
    } catch {
      // Your side hung up: the push ends.
    } finally {
      pushing.done = true;
    }
  })();
  const owedTooMuch = () => watch.maxOwedAtRead > MAX_QUEUED_BYTES;
  const describe = () =>
    `pushed ${pushing.pushed} bytes; your code read lines owing ${watch.echoDue} echo bytes and ` +
    `wrote ${watch.written}; the most still unwritten at a read() call: ${watch.maxOwedAtRead}`;
  const BACK_PRESSURE = "read the next bytes only once at most MAX_QUEUED_BYTES (64 KiB) of " +
    "echoes still wait to be written — simplest: await the echoes of one read before the next " +
    "read. A peer that never reads then stops being read, instead of filling your memory with " +
    "echoes it will never take";
  // Round by round: once your code waits on a write and reads nothing, the deadlines run.
  for (let round = 1; round <= 30 && !settled && !owedTooMuch(); round++) {
    await t.eventually(
      `round ${round}: your code waits for a write to the peer, or it has ended`,
      () => settled || owedTooMuch() || (watch.writesPending > 0 && watch.readsPending === 0),
      {
        expected: "your code to stop reading while its echoes wait (a write pending, no read)",
        actual: describe,
        note: BACK_PRESSURE,
        timeoutMs: 4000,
        everyMs: 2,
      },
    );
    if (settled || owedTooMuch()) break;
    await t.step(`advance the clock by ${IDLE_MS} ms, then ${PONG_MS} ms`, () => {
      clock.advance(IDLE_MS);
      clock.advance(PONG_MS);
    });
    await ioTurns();
  }
  t.check(!owedTooMuch(), {
    step: "the echoes your code still owed the never-reading peer each time it read again",
    expected: `at most ${MAX_QUEUED_BYTES} bytes still unwritten at every read() call`,
    actual: describe(),
    note: BACK_PRESSURE,
  });
  const ending = await t.step("superviseConnection returns", () => running, {
    timeoutMs: 4000,
    note:
      "a peer that takes none of its echoes cannot take the PING either: once your code waits " +
      "on the write, nothing it sends is read, so pongTimeoutMs after the PING it is hung up",
  });
  t.expectEqual(
    ending,
    "no pong",
    "what superviseConnection returned for the peer that never read",
    "while your code waits for the peer to take its echoes, it reads nothing from it: the PING " +
      "goes unanswered, and the connection ends with no pong",
  );
  t.check(watch.writesAfterClose === 0, {
    step: "writes your code started after it closed the connection",
    expected: "none: once the connection has ended, what is still queued is dropped",
    actual: `${watch.writesAfterClose} write(s) on the closed connection`,
    note: "check in your writer whether the connection has ended before each write: a queue " +
      "of echoes written into a closed connection fails once per entry (a long queue keeps a " +
      "server busy for minutes after the peer is gone)",
  });
});

/** Runs `start` with `Deno.listen` swapped for a listener whose accept() the grader can fail. */
function failingListen<T>(start: () => T): { value: T; double: AcceptDouble } {
  const double: AcceptDouble = { calls: 0, failNext: 0, errno: 24 };
  const value = whileSwapped(
    "listen",
    (real) =>
      ((options: Deno.TcpListenOptions) => {
        const listener = real(options);
        const accept = () => {
          double.calls++;
          if (double.failNext > 0) {
            double.failNext--;
            const text = double.errno === 24
              ? "Too many open files"
              : "Too many open files in system";
            return Promise.reject(
              new Error(`${text} (os error ${double.errno}): the grader failed this accept()`),
            );
          }
          return listener.accept();
        };
        async function* iterate() {
          while (true) yield await accept();
        }
        return overriding(listener, { accept, [Symbol.asyncIterator]: iterate });
      }) as typeof Deno.listen,
    start,
  );
  return { value, double };
}

interface AcceptDouble {
  calls: number;
  /** accept() calls still to fail, like a process out of descriptors. */
  failNext: number;
  /** 24 (EMFILE) or 23 (ENFILE). */
  errno: number;
}

const SERVER_IDLE_MS = 1_000_000;

suite.test("the ping server keeps accepting after a client reset in the queue", async (t) => {
  const { startPingServer } = await load(t);
  const clock = new ManualClock();
  const { value: server, gate } = await t.step(
    "startPingServer({ idleMs, pongTimeoutMs, clock }), its accept() held at a gate",
    () =>
      gateListen(
        () => startPingServer({ idleMs: SERVER_IDLE_MS, pongTimeoutMs: 1000, clock }),
        "paused",
      ),
  );
  t.defer(() => server.close());
  await t.step(
    "your server calls accept()",
    () => gate.until(() => gate.waiting === 1, "the server to be in accept()"),
  );
  await t.reset(server.addr, "R", "hello\n");
  const b = await t.connect(server.addr, "B");
  await b.send("b after a reset\n");
  gate.open(); // accept() now meets R first: it throws NotConnected or ConnectionReset
  await b.expect("b after a reset\n", {
    step: "B's echo, after R reset while it waited in the queue",
    note: "a client that resets while it waits in the accept queue makes accept() throw " +
      "(isGoneBeforeAccept(error)): that client is gone, accept the next one at once — one " +
      "client must never stop the server (and this is no shortage: no pause)",
  });
  await t.step("server.close()", () => server.close());
});

const PAUSE_NOTE = "when accept() fails for another reason than a closed listener or a client " +
  "gone from the queue — out of descriptors above all — the client stays queued and an accept " +
  "at once fails again at once. Pause on the clock you were given (clock.setTimeout): " +
  "ACCEPT_PAUSE_MS (10 ms) first, each further pause twice the last, at most " +
  'MAX_ACCEPT_PAUSE_MS (1 s); read "Under attack" in the doc';

suite.test("out of descriptors, the accept loop pauses 10 ms doubling to 1 s, logs once, recovers", async (t) => {
  const { startPingServer } = await load(t);
  const clock = new ManualClock();
  const records = await captureLogs(t);
  const pauseTimers = () => clock.timers().filter((timer) => timer.due - clock.now() <= 1000);
  const describe = (double: AcceptDouble) =>
    `accept() called ${double.calls} time(s); timers on the clock at ${clock.now()} ms: ${
      JSON.stringify(clock.timers().map((timer) => ({ due: timer.due })))
    }`;
  /** Fails unless exactly one record at warning level or above was logged since records[from]. */
  const oneWarning = (from: number, details: { step: string; expected: string; note: string }) => {
    const warnings = records.slice(from)
      .filter((r) => ["warning", "error", "fatal"].includes(r.level))
      .map((r) => `${r.level}: ${logText(r)}`);
    t.check(warnings.length === 1, {
      ...details,
      actual: warnings.length === 0 ? "none" : warnings.join(" | "),
    });
    // An Error object in a record gets its stack formatted, which needs a descriptor.
    const objects = records.slice(from)
      .filter((r) => ["warning", "error", "fatal"].includes(r.level))
      .flatMap((r) =>
        Object.entries(r.properties)
          .filter(([, value]) => typeof value === "object" && value !== null)
          .map(([name, value]) =>
            `${name}: ${value instanceof Error ? `an ${value.name} object` : "an object"}`
          )
      );
    t.check(objects.length === 0, {
      step: `${details.step}: the values logged with it`,
      expected: "text and numbers only: the error as String(error)",
      actual: objects.join(", "),
      note: "log the error's message (String(error)), not the error object: formatting an " +
        "error's stack makes Deno read source maps, a file to open in a process with no " +
        "descriptor left",
    });
  };
  const { value: server, double } = await t.step(
    "startPingServer({ idleMs, pongTimeoutMs, clock }) while its next 9 accept() calls fail " +
      "with EMFILE (out of descriptors)",
    () =>
      failingListen(() => {
        const started = startPingServer({ idleMs: SERVER_IDLE_MS, pongTimeoutMs: 1000, clock });
        return started;
      }),
  );
  t.defer(() => server.close());
  double.failNext = 9;
  const logFrom = records.length;
  // The server is already in its first accept(): a client makes it return, then the next 9 fail.
  const a = await t.connect(server.addr, "A");
  await echoes(a, "A first\n");
  const b = await t.connect(server.addr, "B, queued while accept() fails");
  await b.send("b waited\n");
  /** Waits until the failed call number `calls` has left exactly one pause timer of `ms`. */
  const pausedFor = async (calls: number, ms: number, what: string) => {
    await t.eventually(
      `${what}: your server pauses ${ms} ms on the clock`,
      () => double.calls === calls && pauseTimers().length === 1,
      {
        expected: `${calls} accept() call(s), then one timer on the fake clock, due in ${ms} ms`,
        actual: () => describe(double),
        note: PAUSE_NOTE,
        everyMs: 2,
      },
    );
    await ioTurns();
    const [timer] = pauseTimers();
    t.check(double.calls === calls && timer?.due === clock.now() + ms, {
      step: `${what}: the pause`,
      expected: `no further accept() yet, and the pause due at ${clock.now() + ms} ms ` +
        `(now + ${ms})`,
      actual: describe(double),
      note: PAUSE_NOTE,
    });
  };
  const schedule = [10, 20, 40, 80, 160, 320, 640, 1000, 1000];
  for (const [i, ms] of schedule.entries()) {
    await pausedFor(2 + i, ms, `accept() failed (${i + 1} of 9)`);
    if (ms > 1) {
      await advance(t, clock, ms - 1);
      await ioTurns();
      t.check(double.calls === 2 + i, {
        step: `${ms - 1} ms into the pause of ${ms} ms`,
        expected: "no accept() call yet",
        actual: describe(double),
        note: PAUSE_NOTE,
      });
    }
    await advance(t, clock, 1);
  }
  await b.expect("b waited\n", {
    step: "B, queued through 9 failed accepts, is served at last",
    note: "after the pause, accept again: the client that waited in the queue is served",
  });
  oneWarning(logFrom, {
    step: "the log records at warning level or above while accept() failed 9 times",
    expected: "one warning for the episode",
    note: "log a warning when an episode starts (the first failure), not one per failed " +
      "accept(): a long shortage would flood the log. The first accept that works ends it",
  });

  // Episode 2 (ENFILE) starts from 10 ms again.
  double.failNext = 2;
  double.errno = 23;
  const log2From = records.length;
  const calls = double.calls; // the last one waits for C
  const c = await t.connect(server.addr, "C");
  await echoes(c, "C is served\n");
  await pausedFor(calls + 1, 10, "a new episode (ENFILE) after C was accepted, failure 1");
  await advance(t, clock, 10);
  await pausedFor(calls + 2, 20, "failure 2 of the new episode");
  await advance(t, clock, 20);
  const d = await t.connect(server.addr, "D");
  await t.noted(
    "once the pause is over, accept again and serve the client",
    () => echoes(d, "D is served\n"),
  );
  oneWarning(log2From, {
    step: "the log records at warning level or above during the second episode",
    expected: "one warning: each episode gets its own",
    note: "once an accept succeeds the episode is over: the next failure starts a new one, " +
      "with its warning and a pause of 10 ms again",
  });

  // Episode 3: close() in the middle of a pause.
  double.failNext = 1;
  const calls3 = double.calls; // the last one waits for E
  const e = await t.connect(server.addr, "E");
  await echoes(e, "E is served\n");
  await pausedFor(calls3 + 1, 10, "accept() fails once more");
  await t.step("server.close() during the pause", () => server.close(), {
    note: "close() must end a pause at once (clear its timer and wake the loop): the fake clock " +
      "does not move by itself",
  });
  for (const probe of [a, b, c, d, e]) {
    await probe.expectEnd({ step: `server.close() closes ${probe.label}` });
  }
  expectNoTimers(t, clock, "server.close() during a pause", {
    note: "close() clears the pause timer of the accept loop (clock.clearTimeout)",
  });
});

suite.test("startPingServer hands its clock and deadlines to every connection, and binds its port", async (t) => {
  const { startPingServer } = await load(t);
  const clock = new ManualClock();
  const port = freePort("tcp");
  // Fake minutes: on the real clock this PING would come only a minute later.
  const idleMs = 60_000;
  const pongTimeoutMs = 20_000;
  const maxLineBytes = 32;
  const server = await t.step(
    `startPingServer({ port: ${port}, idleMs: ${idleMs}, pongTimeoutMs: ${pongTimeoutMs}, ` +
      `maxLineBytes: ${maxLineBytes}, clock }) (no hostname)`,
    () => startPingServer({ port, idleMs, pongTimeoutMs, maxLineBytes, clock }),
  );
  t.defer(() => server.close());
  t.check(server.addr.hostname === "127.0.0.1" && server.addr.port === port, {
    step: `startPingServer({ …, port: ${port} }).addr`,
    expected: `127.0.0.1:${port}: the default hostname and the port it was given`,
    actual: JSON.stringify(server.addr),
    note: "listen on options.hostname and options.port (defaults 127.0.0.1 and 0)",
  });
  const peer = await t.connect(server.addr, "peer");
  await echoes(peer, "hello\n");
  await advance(t, clock, idleMs);
  await peer.expect("PING\n", {
    step: `PING after ${idleMs} ms of the fake clock`,
    note:
      "startPingServer must hand its clock, idleMs and pongTimeoutMs to superviseConnection for " +
      "every connection ({ ...options, signal }): without the clock its deadlines run on real time",
  });
  await advance(t, clock, pongTimeoutMs);
  await peer.expectEnd({
    step: `the peer is closed ${pongTimeoutMs} ms of the fake clock later`,
    note: "after pongTimeoutMs of the clock without an answer, close the connection",
  });
  const long = await t.connect(server.addr, "long-line peer");
  await echoes(long, `${"m".repeat(maxLineBytes)}\n`);
  await long.send(`${"m".repeat(maxLineBytes + 1)}\n`);
  await long.expectEnd({
    step: `a line of ${maxLineBytes + 1} bytes ends the connection`,
    note: "startPingServer must hand maxLineBytes to every connection too ({ ...options, signal })",
  });
  const other = await t.connect(server.addr, "second peer");
  await echoes(other, "me too\n");
  await t.step("server.close() with a connection open", () => server.close());
  await other.expectEnd({
    step: "server.close() closes the open connection",
    note: "close() shuts every connection down (abort their signal) and waits for them",
  });
  await t.step("server.close() a second time (it does nothing)", () => server.close(), {
    note: CLOSE_AGAIN_NOTE,
  });
  expectNoTimers(t, clock, "server.close()");

  if (!IPV6_LOOPBACK) return; // the rest needs ::1
  const v6 = await t.step(
    'startPingServer({ hostname: "::1", idleMs, pongTimeoutMs, clock })',
    () => startPingServer({ hostname: "::1", idleMs, pongTimeoutMs, clock }),
  );
  t.defer(() => v6.close());
  t.check(v6.addr.hostname === "::1", {
    step: 'startPingServer({ hostname: "::1", … }).addr',
    expected: "hostname ::1: the hostname it was given",
    actual: JSON.stringify(v6.addr),
    note: "listen on options.hostname (default 127.0.0.1), not always 127.0.0.1",
  });
  const v6peer = await t.connect(v6.addr, "peer on ::1");
  await echoes(v6peer, "over IPv6\n");
  await t.step("the ::1 server's close()", () => v6.close());
  await v6peer.expectEnd({ step: "the ::1 server's close() closes the open connection" });
});

const CLOSE_CONN_NOTE = "close conn when answerPings ends, whichever way it ends (finally)";

/** Closes `conn` after the check, unless answerPings closed it already, as it should. */
function closeAfterCheck(t: Grader, conn: Deno.Conn): void {
  t.defer(() => {
    try {
      conn.close();
    } catch {
      // answerPings closed it, as it should.
    }
  });
}

/** Fails unless answerPings closed `conn` (which the grader closes then). */
function expectClosedByAnswerPings(t: Grader, conn: Deno.Conn, after: string): void {
  let open = false;
  try {
    conn.close();
    open = true;
  } catch {
    // Closed by answerPings.
  }
  t.check(!open, {
    step: `conn after answerPings ${after}`,
    expected: "closed by answerPings",
    actual: "still open (the grader closed it)",
    note: CLOSE_CONN_NOTE,
  });
}

suite.test("answerPings answers PING with PONG and passes the other lines on", async (t) => {
  const { answerPings } = await load(t);
  const server = t.serve(async (peer) => {
    await peer.send("PING\n", { split: "bytes" });
    await peer.expect("PONG\n", {
      step: "your client answers a PING sent one byte at a time",
      note: "collect bytes until \\n: a line can arrive in pieces",
    });
    await peer.send("hello\nPING\nwörld ✓\r\n");
    await peer.expect("PONG\n", {
      step: "your client answers the PING among other lines",
      note: "one read can hold several lines: handle each of them",
    });
    await peer.send("PI", { step: 'send "PI"' });
    await peer.send("NG\r\nbye\n", { step: 'send "NG\\r\\nbye\\n"' });
    await peer.expect("PONG\n", { step: "your client answers a PING that ends in \\r\\n" });
    await peer.closeWrite();
    await peer.expectEnd({
      step: "your client closes its connection after the server's EOF",
      note: "answerPings returns at EOF and closes the connection",
    });
  });
  const conn = await Deno.connect(server.addr);
  const lines: string[] = [];
  const { running } = await start(
    t,
    "answerPings(conn, onLine)",
    () => answerPings(conn, (line) => void lines.push(line)),
  );
  closeAfterCheck(t, conn);
  await t.step("the grader's server finishes its script", () => server.settled(), {
    timeoutMs: 4 * STEP_MS,
  });
  await t.step("answerPings returns after the server's EOF", () => running);
  t.expectEqual(
    lines,
    ["hello", "wörld ✓", "bye"],
    "the lines your client passed to onLine",
    "every line but PING, without its \\n or \\r\\n, decoded as UTF-8",
  );
});

suite.test("answerPings returns when the peer resets the connection, and closes it", async (t) => {
  const { answerPings } = await load(t);
  const { peer: server, conn } = await connectedPair(t, "server", { resettable: true });
  closeAfterCheck(t, conn);
  const lines: string[] = [];
  const { running } = await start(
    t,
    "answerPings(conn, onLine)",
    () => answerPings(conn, (line) => void lines.push(line)),
  );
  await server.send("PING\n");
  await server.expect("PONG\n", { step: "your client answers PING" });
  await server.send("\ncarriage\rreturn inside\r\nlast words\n");
  await pollUntil(t, "onLine receives the three lines", () => lines.length, (n) => n >= 3, {
    expected: 'onLine(""), onLine("carriage\\rreturn inside"), onLine("last words")',
    actual: () => `${lines.length} call(s): ${JSON.stringify(lines)}`,
    note: "every line but PING goes to onLine, an empty one too",
  });
  await server.reset();
  await t.step("answerPings returns after the server reset the connection", () => running, {
    note:
      "a reset by the peer ends the conversation as EOF does: answerPings returns, without an " +
      "error (catch Deno.errors.ConnectionReset), and closes conn",
  });
  expectClosedByAnswerPings(t, conn, "returned");
  t.expectEqual(
    lines,
    ["", "carriage\rreturn inside", "last words"],
    "the lines your client passed to onLine",
    "each line without its \\n or \\r\\n at the end (a \\r inside the line stays)",
  );

  // The peer may be gone when the PONG goes out: the write fails with BrokenPipe.
  const second = await connectedPair(t, "server 2");
  closeAfterCheck(t, second.conn);
  const broken = overriding(second.conn, {
    write: () => Promise.reject(new Deno.errors.BrokenPipe("Broken pipe (os error 32)")),
  });
  const { running: answering } = await start(
    t,
    "answerPings(conn, onLine) on a connection whose writes fail with BrokenPipe (the peer is gone)",
    () => answerPings(broken, () => {}),
  );
  await second.peer.send("PING\n");
  await t.step("answerPings returns after its PONG failed with BrokenPipe", () => answering, {
    note: "a peer that went away shows as ConnectionReset on a read or BrokenPipe on a write: " +
      "both end the conversation as EOF does — answerPings returns, without an error, and " +
      "closes conn",
  });
  expectClosedByAnswerPings(t, second.conn, "returned after BrokenPipe");
});

suite.test("answerPings lets an error thrown by onLine pass through, and closes conn", async (t) => {
  const { answerPings } = await load(t);
  const { peer: server, conn } = await connectedPair(t, "server");
  closeAfterCheck(t, conn);
  const failure = new Error("the grader's onLine fails on purpose");
  const { running } = await start(
    t,
    "answerPings(conn, onLine) with an onLine that throws",
    () =>
      answerPings(conn, () => {
        throw failure;
      }),
  );
  await server.send("a line for onLine\n");
  const error = await t.expectError("answerPings when onLine throws", () => running, {
    name: "Error",
    message: "the grader's onLine fails on purpose",
    what: "the very error onLine threw",
    note: "only the end of the conversation (EOF, a reset by the peer) ends answerPings quietly; " +
      "any other error is not yours to swallow: let it pass through, unchanged",
  });
  t.check(error === failure, {
    step: "the error answerPings rejected with",
    expected: "the very Error object onLine threw",
    actual: String(error),
  });
  expectClosedByAnswerPings(t, conn, "failed");
  await server.expectEnd({
    step: "the grader's side sees your client close the connection",
    note: CLOSE_CONN_NOTE,
  });
});

// ─── Integration, on real millisecond timers ────────────────────────────────

suite.test("real timers: a heartbeat-only client stays while silent ones expire", async (t) => {
  const { startChatClient } = await load(t);
  const server = await startServer(t);
  const heard: string[] = [];
  const clients = await t.step(
    "start two chat clients (serverTimeoutMs: 60, real clock)",
    () =>
      ["listener", "talker"].map((name) => {
        const client = startChatClient({
          server: { hostname: "127.0.0.1", port: server.addr.port },
          serverTimeoutMs: 60,
          onMessage: name === "listener" ? (text) => void heard.push(text) : () => {},
        });
        t.defer(() => client.close());
        return client;
      }),
  );
  const [listener, talker] = clients;
  await pollUntil(
    t,
    "both clients are registered",
    () => keys(server.clients()),
    (list) => [listener, talker].every((client) => list.includes(key(client.addr))),
    {
      expected: "both clients listed by server.clients()",
      actual: () => describeClients(server),
    },
  );
  // Three silent clients in turn: each joins after the last expired, so the
  // listener lives through at least three timeouts on heartbeats alone.
  for (const n of [1, 2, 3]) {
    const silent = openUdpProbe(t, `silent ${n}`);
    await silent.send("hb", server.addr);
    await registered(t, server, silent);
    await pollUntil(
      t,
      `silent ${n} expires on the server's real timer`,
      () => keys(server.clients()),
      (list) => !list.includes(key(silent.addr)),
      {
        expected: `${key(silent.addr)} to expire (silent, timeoutMs 60, sweepMs 15)`,
        actual: () => describeClients(server),
        note: "with no clock option the server uses systemClock: its sweep runs on real time",
      },
      3000,
    );
    await silent.close();
  }
  await t.step("the heartbeat-only listener still hears the talker", async () => {
    // A heartbeat that lost a race with a sweep on a busy machine is forgiven: the
    // listener joins again on its next beat, so the talker repeats itself (bounded).
    for (let attempt = 1; attempt <= 5; attempt++) {
      const text = `are you there? (${attempt})`;
      await talker.send(text);
      const deadline = performance.now() + 400;
      while (performance.now() < deadline) {
        if (heard.some((line) => line.endsWith(text))) return;
        await nextTurn(5);
      }
    }
    t.fail({
      step: "the heartbeat-only listener still hears the talker",
      expected: "the listener (which only sends hb) to receive the talker's message",
      actual: `it heard ${JSON.stringify(heard)}; ${describeClients(server)}`,
      note: "the client must keep sending hb every serverTimeoutMs / 3 on its own timer, so the " +
        "server never expires it",
    });
  }, { timeoutMs: 4 * STEP_MS });
  await t.step("listener.close()", () => listener.close());
  await pollUntil(
    t,
    "the listener's quit removes it at once",
    () => keys(server.clients()),
    (list) => !list.includes(key(listener.addr)),
    {
      expected: `${key(listener.addr)} gone from server.clients()`,
      actual: () => describeClients(server),
    },
  );
});

suite.test("real timers: an answering client stays connected, a silent peer is closed", async (t) => {
  const { startPingServer, answerPings } = await load(t);
  const server = await t.step(
    "startPingServer({ idleMs: 30, pongTimeoutMs: 300 }) (real clock)",
    () => startPingServer({ hostname: "127.0.0.1", port: 0, idleMs: 30, pongTimeoutMs: 300 }),
  );
  t.defer(() => server.close());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  closeAfterCheck(t, conn);
  const lines: string[] = [];
  const { running } = await start(
    t,
    "answerPings(conn, onLine) on a connection to your server",
    () => answerPings(conn, (line) => void lines.push(line)),
  );
  // Two silent peers in turn: the answering client lives through two full
  // PING + pongTimeout periods (about twenty PINGs) before it is checked.
  for (const n of [1, 2]) {
    const silent = await t.connect(server.addr, `silent ${n}`);
    await silent.expect("PING\n", {
      step: `silent ${n} is PINGed after 30 ms idle`,
      timeoutMs: 3000,
      note: "with no clock option the server uses systemClock: its idle timer runs on real time",
    });
    await silent.expectEnd({
      step: `silent ${n} is closed 300 ms after its PING`,
      timeoutMs: 3000,
      note: "a peer that does not answer a PING within pongTimeoutMs must be closed",
    });
  }
  await t.step("the answering client is still connected: send a line, hear it back", async () => {
    try {
      await conn.write(encoder.encode("still here\n"));
    } catch (error) {
      t.fail({
        step: "the answering client is still connected",
        expected: "the connection to be open",
        actual: `write failed: ${error}`,
        note: "your server closed a client that answered every PING: a PONG is proof of life",
      });
    }
  });
  await pollUntil(t, "the echo reaches the answering client", () => lines, (l) => l.length > 0, {
    expected: 'the echo "still here"',
    actual: () => "nothing came back",
    note: "a client that answers every PING with PONG must stay connected",
  });
  t.expectEqual(lines, ["still here"], "lines the answering client received (PINGs aside)");
  await t.step("server.close() ends every connection", () => server.close());
  await t.step("answerPings returns once the server is gone", () => running);
});
