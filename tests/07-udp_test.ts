/**
 * Grading suite of lesson 07 — UDP: datagrams, and reliability on top.
 * Run it with `deno task lesson 7`.
 *
 * The grader talks to your code through recorded UDP sockets (UdpProbe):
 * it sends to your echo and request servers from several addresses, plays
 * the server for your client (dropping, repeating and answering out of turn
 * on purpose), and finally runs 500 requests from your client to your server
 * through a lossy proxy (drops, duplicates, reorders; seeded) and counts how
 * often each request was executed. Timeouts are tens of milliseconds; no
 * check measures time.
 */
import {
  addressText,
  concatBytes,
  equalBytes,
  freePort,
  GradeFailure,
  type Grader,
  ioTurns,
  lessonSuite,
  showBytes,
  STEP_MS,
  toBytes,
  whileRunning,
} from "../workbook/harness/mod.ts";
import { type Datagram, openUdpProbe, UdpProbe } from "../workbook/harness/udp_probe.ts";
import { UdpProxy } from "../workbook/harness/udp_proxy.ts";
import type * as Lesson from "../solutions/07-udp/udp.ts";

const suite = lessonSuite("07");
const load = (t: Grader) => t.load<typeof Lesson>();

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

// ── the wire format, the grader's own copy ──────────────────────────────────

function encodeMessage(id: number, payload: string | Uint8Array): Uint8Array {
  return concatBytes([bytes(`${id}\n`), toBytes(payload)]);
}

function decodeMessage(datagram: Uint8Array): { id: number; payload: string } | undefined {
  const newline = datagram.indexOf(0x0a);
  if (newline < 1) return undefined;
  const digits = decoder.decode(datagram.subarray(0, newline));
  if (!/^\d{1,10}$/.test(digits)) return undefined;
  return { id: Number(digits), payload: decoder.decode(datagram.subarray(newline + 1)) };
}

const portOf = (addr: Deno.Addr) => (addr as Deno.NetAddr).port;

/** A counting handler: replies `done <payload>` and counts runs per payload. */
function countingHandler() {
  const runs = new Map<string, number>();
  /** The second argument of each call: `{ id, from }`. */
  const requests: { id?: unknown; from?: unknown }[] = [];
  return {
    runs,
    requests,
    count: (payload: string) => runs.get(payload) ?? 0,
    handler: (payload: Uint8Array, request?: { id?: unknown; from?: unknown }) => {
      const text = decoder.decode(payload);
      runs.set(text, (runs.get(text) ?? 0) + 1);
      requests.push({ ...request });
      return bytes(`done ${text}`);
    },
  };
}

/**
 * A counting handler that holds requests with payload `slow` until
 * `release()`: a slow async handler whose progress the grader controls.
 * `started()` counts the calls for `slow` as they begin.
 */
function gatedHandler(slow: string) {
  const counting = countingHandler();
  const gate = Promise.withResolvers<void>();
  let started = 0;
  return {
    ...counting,
    release: () => gate.resolve(),
    started: () => started,
    handler: async (payload: Uint8Array) => {
      if (decoder.decode(payload) === slow) {
        started++;
        await gate.promise;
      }
      return counting.handler(payload);
    },
  };
}

// ── part 1: datagrams ───────────────────────────────────────────────────────

const ECHO_SIZES: [string, Uint8Array][] = [
  ["a short text", bytes("hello, datagram")],
  ["1 byte", bytes("!")],
  ["1400 bytes (more than a 1024-byte buffer)", bytes("0123456789abcdef".repeat(87) + "udp!1234")],
  ["an empty datagram", new Uint8Array(0)],
  ["60000 bytes", new Uint8Array(60_000).map((_, i) => 97 + (i % 26))],
  ["a short text after the big one", bytes("still whole?")],
];

suite.test("the echo server sends each datagram back whole, empty and large ones too", async (t) => {
  const { startEchoServer } = await load(t);
  const server = await t.step("startEchoServer()", () => startEchoServer());
  t.defer(() => server.close());
  t.check(server.addr.hostname === "127.0.0.1" && server.addr.port > 0, {
    step: "startEchoServer().addr",
    expected: "a UDP address on 127.0.0.1 with the port the kernel picked",
    actual: JSON.stringify(server.addr),
  });
  const a = openUdpProbe(t, "A");
  // All sent back to back: each must come back as one datagram of its own, in full.
  for (const [, data] of ECHO_SIZES) await a.send(data, server.addr);
  for (const [what, data] of ECHO_SIZES) {
    await a.expectNext(data, {
      step: `the echo of ${what}`,
      explain: (got) =>
        got.bytes.length < data.length && equalBytes(got.bytes, data.subarray(0, got.bytes.length))
          ? `your echo was cut to ${got.bytes.length} of ${data.length} bytes: receive(buffer) ` +
            "with a small buffer drops the rest of a datagram. Call receive() without a buffer " +
            "(Deno then uses one of 65,507 bytes, the largest UDP payload)"
          : data.length === 0
          ? "an empty datagram is a message too: echo it (with UDP, 0 bytes is not end of stream)"
          : undefined,
    });
  }
  await t.step("server.close()", () => server.close());
});

suite.test("the echo server replies to each datagram's sender, not to a fixed address", async (t) => {
  const { startEchoServer } = await load(t);
  const server = await t.step("startEchoServer()", () => startEchoServer());
  t.defer(() => server.close());
  const a = openUdpProbe(t, "A");
  const b = openUdpProbe(t, "B");
  const c = openUdpProbe(t, "C");
  for (const [probe, text] of [[a, "A one"], [b, "B one"], [c, "C one"], [b, "B two"]] as const) {
    await probe.send(text, server.addr);
    await probe.expectNext(text, {
      step: `${probe.label} sends "${text}" and waits for its echo`,
      timeoutMs: 1000,
    }).catch((error) => {
      const misdelivered = [a, b, c].find((p) => p !== probe && p.queued.length > 0);
      if (misdelivered) {
        error.details.note =
          `the echo went to ${misdelivered.label} (${
            addressText(misdelivered.addr)
          }) instead: reply to the address receive() returned with THIS datagram, not to one ` +
          "you saved earlier";
        error.message = error.render();
      }
      throw error;
    });
  }
});

suite.test("two echo servers at once, each on the hostname and port it was given", async (t) => {
  const { startEchoServer } = await load(t);
  const port = freePort("udp");
  const one = await t.step(
    `startEchoServer({ hostname: "127.0.0.1", port: ${port} })`,
    () => startEchoServer({ hostname: "127.0.0.1", port }),
  );
  t.defer(() => one.close());
  t.check(one.addr.hostname === "127.0.0.1" && one.addr.port === port, {
    step: `startEchoServer({ hostname: "127.0.0.1", port: ${port} }).addr`,
    expected: `127.0.0.1:${port}, the port it was given`,
    actual: JSON.stringify(one.addr),
    note: "bind the port in options.port (0, the kernel's pick, only when none is given)",
  });
  const two = await t.step("a second startEchoServer() beside the first", () => startEchoServer());
  t.defer(() => two.close());
  const a = openUdpProbe(t, "A");
  for (const [server, text] of [[one.addr, "to the first"], [two.addr, "to the second"]] as const) {
    await a.send(text, server);
    const echo = await a.expectNext(text, {
      step: `A sends "${text}" to ${addressText(server)} and waits for its echo`,
    });
    t.check(echo.from.port === server.port, {
      step: `the sender of the echo of "${text}"`,
      expected: `the server A sent to, ${addressText(server)}`,
      actual: addressText(echo.from),
    });
  }
});

suite.test("receiveAtMost cuts a datagram that is too long, says so, and the rest is gone", async (t) => {
  const { receiveAtMost } = await load(t);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  t.defer(() => socket.close());
  const sender = openUdpProbe(t, "sender");
  const cases: { what: string; data: Uint8Array; truncated: boolean }[] = [
    { what: "10 bytes", data: bytes("ten bytes!"), truncated: false },
    { what: "exactly 64 bytes", data: bytes("x".repeat(63) + "|"), truncated: false },
    { what: "65 bytes", data: bytes("y".repeat(64) + "|"), truncated: true },
    { what: "1000 bytes", data: bytes("z".repeat(999) + "|"), truncated: true },
    { what: "3 bytes after the long one", data: bytes("end"), truncated: false },
  ];
  for (const { what, data, truncated } of cases) {
    await sender.send(data, socket.addr as Deno.NetAddr);
    const step = `receiveAtMost(socket, 64) for a datagram of ${what}`;
    const got = await t.step(step, () => receiveAtMost(socket, 64));
    const kept = data.subarray(0, 64);
    t.check(equalBytes(got.data, kept), {
      step: `${step}: data`,
      expected: `${showBytes(kept, 80)} (${kept.length} bytes)`,
      actual: `${showBytes(got.data, 80)} (${got.data.length} bytes)`,
      note: what.startsWith("3 bytes")
        ? "the next receive gets the next datagram: the cut-off tail of a long one is gone"
        : "keep at most maxBytes bytes of each datagram",
    });
    t.check(got.truncated === truncated, {
      step: `${step}: truncated`,
      expected: String(truncated),
      actual: String(got.truncated),
      note: truncated
        ? "the datagram was longer than 64 bytes, and nothing else will tell the caller: read " +
          "into a buffer of maxBytes + 1 bytes; if the datagram filled it, it was too long"
        : "a datagram of at most maxBytes bytes arrived whole",
    });
    t.check(portOf(got.from) === sender.addr.port, {
      step: `${step}: from`,
      expected: `the sender's address ${addressText(sender.addr)}`,
      actual: JSON.stringify(got.from),
    });
  }
});

suite.test("ConnectedUdpSocket sends to its peer and ignores datagrams from anyone else", async (t) => {
  const { ConnectedUdpSocket } = await load(t);
  const peer = openUdpProbe(t, "peer");
  const stranger = openUdpProbe(t, "stranger");
  const conn = new ConnectedUdpSocket(peer.addr);
  t.defer(() => conn.close());
  await t.step('conn.send("hello peer")', () => conn.send(bytes("hello peer")));
  const first = await peer.expectNext("hello peer", { step: "the peer receives your datagram" });
  t.check(first.from.port === conn.localAddr.port, {
    step: "the datagram's sender",
    expected: `your socket's address ${addressText(conn.localAddr)}`,
    actual: addressText(first.from),
  });
  // The stranger also sends from 127.0.0.1: only the port tells it from the peer.
  await stranger.send("spoofed reply", conn.localAddr);
  await peer.send("real reply", conn.localAddr);
  const got = await t.step(
    "conn.receive() after a stranger and the peer sent",
    () => conn.receive(),
  );
  t.check(decoder.decode(got) === "real reply", {
    step: "what conn.receive() returned",
    expected: '"real reply" (from the peer)',
    actual: `${showBytes(got)}${
      decoder.decode(got) === "spoofed reply" ? " (from the stranger)" : ""
    }`,
    note: "anyone can send to a UDP port: keep only datagrams whose sender has the peer's " +
      "hostname AND port (the stranger is on 127.0.0.1 too)",
  });
  await peer.send("second reply", conn.localAddr);
  const second = await t.step("conn.receive() again", () => conn.receive());
  t.expectEqual(decoder.decode(second), "second reply", "what the second conn.receive() returned");
  t.expectEqual(conn.ignored, 1, "conn.ignored", "count each datagram you drop for its sender");
  // The other half of an address: a peer on another host with the stranger's very port number.
  // The grader never sends to 127.0.0.2; it only names it as the peer.
  const far = { hostname: "127.0.0.2", port: stranger.addr.port };
  const other = new ConnectedUdpSocket(far);
  t.defer(() => other.close());
  let outcome: { data: Uint8Array } | { error: unknown } | undefined;
  other.receive().then((data) => outcome = { data }, (error) => outcome = { error });
  await stranger.send("same port, other host", other.localAddr);
  const step = `a ConnectedUdpSocket whose peer is ${addressText(far)} gets a datagram from ` +
    `${addressText(stranger.addr)}: same port number, other host`;
  await t.eventually(step, () => other.ignored >= 1 || outcome !== undefined, {
    expected: "conn.ignored to count it",
    actual: () => `conn.ignored is ${other.ignored}`,
  });
  t.check(outcome === undefined && other.ignored === 1, {
    step,
    expected: "receive() still waiting for the peer, and conn.ignored 1",
    actual: outcome === undefined
      ? `conn.ignored ${other.ignored}`
      : "data" in outcome
      ? `receive() returned ${showBytes(outcome.data)} from the stranger`
      : `receive() failed: ${outcome.error}`,
    note: "a sender is a hostname AND a port: a socket on another host may have the peer's port " +
      "number. Compare both",
  });
});

suite.test("receiveWithin gives up after its time, and a datagram that comes later is not lost", async (t) => {
  const { ConnectedUdpSocket } = await load(t);
  const peer = openUdpProbe(t, "peer");
  const conn = new ConnectedUdpSocket(peer.addr);
  t.defer(() => conn.close());
  const none = await t.step(
    "conn.receiveWithin(20) while nothing comes",
    () => conn.receiveWithin(20),
  );
  t.check(none === undefined, {
    step: "conn.receiveWithin(20) while nothing comes",
    expected: "undefined (no datagram within 20 ms)",
    actual: none === undefined ? "undefined" : showBytes(none),
  });
  await peer.send("late 1", conn.localAddr);
  await peer.send("late 2", conn.localAddr);
  for (const text of ["late 1", "late 2"]) {
    const got = await t.step(
      `conn.receiveWithin(1000) after the peer sent "late 1" and "late 2"`,
      () => conn.receiveWithin(1000),
      // Its own 1000 ms may pass (a datagram swallowed): the check below says so.
      { timeoutMs: 1000 + STEP_MS },
    );
    t.check(got !== undefined && decoder.decode(got) === text, {
      step: `the datagram receiveWithin returned (expecting "${text}")`,
      expected: `"${text}"`,
      actual: got === undefined ? "undefined: nothing within 1000 ms" : showBytes(got),
      note: "the receive() started by the first call that timed out is still waiting, and it " +
        "takes the next datagram. Starting a new receive() each call leaves that one to swallow " +
        "a datagram nobody reads: keep it in #pending and race the same promise next time",
    });
  }
  const again = await t.step(
    "conn.receiveWithin(20) once more, with nothing sent",
    () => conn.receiveWithin(20),
  );
  t.check(again === undefined, {
    step: "conn.receiveWithin(20) once more",
    expected: "undefined",
    actual: again === undefined ? "undefined" : showBytes(again),
  });
  // A datagram that comes while receiveWithin waits: it must wait for it, up to its ms.
  const waiting = t.step(
    'conn.receiveWithin(1000) while the peer sends "on time" a moment later',
    () => conn.receiveWithin(1000),
    { timeoutMs: 1000 + STEP_MS },
  );
  await whileRunning(waiting, () => ioTurns());
  await peer.send("on time", conn.localAddr);
  const onTime = await waiting;
  t.check(onTime !== undefined && decoder.decode(onTime) === "on time", {
    step: 'what conn.receiveWithin(1000) returned when "on time" came during the wait',
    expected: '"on time"',
    actual: onTime === undefined
      ? "undefined: it gave up before the datagram came"
      : showBytes(onTime),
    note: "race the pending receive against a timer of ms milliseconds (never less than 0)",
  });
});

// ── part 2: the client, with the grader as its server ───────────────────────

/** The next request from the learner's client that is not one of `oldIds`. */
async function nextRequest(
  server: UdpProbe,
  step: string,
  oldIds: Set<number> = new Set(),
): Promise<Datagram & { id: number; payload: string }> {
  for (let i = 0; i < 50; i++) {
    const datagram = await server.next({ step });
    const message = decodeMessage(datagram.bytes);
    if (!message) {
      throw new GradeFailure({
        kind: "mismatch",
        step,
        expected: 'a request "<id>\\n<payload>" (decimal id, newline, payload)',
        actual: showBytes(datagram.bytes),
        note: "build the datagram with encodeMessage(id, payload)",
      });
    }
    if (!oldIds.has(message.id)) return { ...datagram, ...message };
  }
  throw new Error("the grader skipped 50 retransmissions of old requests");
}

suite.test("request sends <id>\\n<payload> and returns the payload of the reply", async (t) => {
  const { ReliableClient } = await load(t);
  const server = openUdpProbe(t, "server");
  const client = new ReliableClient({ server: server.addr, timeoutMs: 500, maxTries: 5 });
  t.defer(() => client.close());
  const seen = new Set<number>();
  for (const [ask, answer] of [["ping", "pong"], ["second", "SECOND"]]) {
    const running = t.step(`client.request("${ask}")`, () => client.request(bytes(ask)));
    const request = await whileRunning(
      running,
      () => nextRequest(server, `the grader waits for request "${ask}"`, seen),
    );
    t.check(request.payload === ask, {
      step: `request "${ask}" as it arrived`,
      expected: `payload "${ask}"`,
      actual: showBytes(request.bytes),
    });
    seen.add(request.id);
    await server.send(encodeMessage(request.id, answer), request.from);
    const reply = await running;
    t.expectEqual(decoder.decode(reply), answer, `what client.request("${ask}") returned`);
  }
  t.check(seen.size === 2, {
    step: "the ids of the two requests",
    expected: "two different ids: each request gets a new one",
    actual: `both used id ${[...seen][0]}`,
  });
  t.expectEqual(client.stats.requests, 2, "client.stats.requests after two requests");
});

suite.test("request ids run up to MAX_REQUEST_ID and then start again", async (t) => {
  const { ReliableClient, MAX_REQUEST_ID } = await load(t);
  const server = openUdpProbe(t, "server");
  const client = new ReliableClient({ server: server.addr, timeoutMs: 500, maxTries: 5 });
  t.defer(() => client.close());
  client.nextId = MAX_REQUEST_ID;
  const seen = new Set<number>();
  for (const ask of ["the last id", "after the last id"]) {
    const running = t.step(
      `client.request("${ask}") with nextId ${seen.size === 0 ? MAX_REQUEST_ID : "after it"}`,
      () => client.request(bytes(ask)),
    );
    const request = await t.noted(
      `ids are unsigned 32-bit numbers: after MAX_REQUEST_ID (${MAX_REQUEST_ID}) they start ` +
        "again at 1",
      () =>
        whileRunning(
          running,
          () => nextRequest(server, `the grader waits for request "${ask}"`, seen),
        ),
    );
    const expected = seen.size === 0
      ? `id ${MAX_REQUEST_ID} (nextId)`
      : `id 1: after ${MAX_REQUEST_ID} the ids start again at 1 (0 is never a request's id)`;
    const ok = seen.size === 0 ? request.id === MAX_REQUEST_ID : request.id === 1;
    t.check(ok, {
      step: `the id of request "${ask}"`,
      expected,
      actual: `id ${request.id}`,
      note: `ids are unsigned 32-bit numbers: after MAX_REQUEST_ID (${MAX_REQUEST_ID}) they ` +
        "start again at 1",
    });
    seen.add(request.id);
    await server.send(encodeMessage(request.id, `reply ${request.id}`), request.from);
    t.expectEqual(
      decoder.decode(await running),
      `reply ${request.id}`,
      `what client.request("${ask}") returned`,
    );
  }
});

suite.test("request sends the same datagram again when no reply comes in time", async (t) => {
  const { ReliableClient } = await load(t);
  const server = openUdpProbe(t, "server");
  const client = new ReliableClient({ server: server.addr, timeoutMs: 30, maxTries: 20 });
  t.defer(() => client.close());
  const running = t.step(
    'client.request("lost twice") with timeoutMs 30',
    () => client.request(bytes("lost twice")),
  );
  // The grader "loses" the first two copies: it reads them and answers nothing.
  const copies: Datagram[] = [];
  try {
    for (const n of ["first", "second", "third"]) {
      copies.push(
        await whileRunning(running, () =>
          server.next({
            step: `the ${n} copy of the request (the grader ignored the earlier ones)`,
          })),
      );
    }
  } catch (error) {
    if (error instanceof GradeFailure && /RequestTimeoutError/.test(error.details.actual ?? "")) {
      const sent = server.received.length;
      error.details.note = `your client gave up after sending the request ${sent} time(s), ` +
        "though maxTries is 20. The grader ignored the copies on purpose, as a network loses " +
        "datagrams: when timeoutMs passes without the reply, send the same datagram again";
      error.message = error.render();
    }
    throw error;
  }
  for (const [i, copy] of copies.entries()) {
    t.check(equalBytes(copy.bytes, copies[0].bytes), {
      step: `copy ${i + 1} of the request`,
      expected: `the same bytes as the first: ${showBytes(copies[0].bytes)}`,
      actual: showBytes(copy.bytes),
      note: "a retransmission repeats the request: same id, same payload. With a new id the " +
        "server cannot tell it from a new request and runs it twice",
    });
  }
  const id = decodeMessage(copies[0].bytes)!.id;
  await server.send(encodeMessage(id, "finally"), copies[2].from);
  const reply = await running;
  t.expectEqual(decoder.decode(reply), "finally", "what client.request returned");
  t.check(client.stats.retransmissions >= 2, {
    step: "client.stats.retransmissions",
    expected: "at least 2 (the grader ignored two copies)",
    actual: String(client.stats.retransmissions),
  });
  t.expectEqual(
    client.stats.requests,
    1,
    "client.stats.requests",
    "a retransmission is not a new request: count it in stats.retransmissions only",
  );
});

suite.test("request gives up after maxTries with a RequestTimeoutError", async (t) => {
  const { ReliableClient } = await load(t);
  const server = openUdpProbe(t, "server");
  const marker = openUdpProbe(t, "marker");
  const client = new ReliableClient({ server: server.addr, timeoutMs: 20, maxTries: 3 });
  t.defer(() => client.close());
  const error = await t.expectError(
    'client.request("anyone?") to a server that never answers (timeoutMs 20, maxTries 3)',
    () => client.request(bytes("anyone?")),
    { name: "RequestTimeoutError", what: "after 3 unanswered tries" },
  );
  const message = error.message;
  t.check(message.includes(`127.0.0.1:${server.addr.port}`) && message.includes("3"), {
    step: "the error's message",
    expected: `a message naming the server 127.0.0.1:${server.addr.port} and the 3 tries`,
    actual: JSON.stringify(message),
  });
  // Everything the client sent is queued before the marker the grader sends now.
  await marker.send("marker: the client has given up", server.addr);
  for (const n of [1, 2, 3]) {
    await server.next({ step: `copy ${n} of 3 of the request` }).then((copy) => {
      if (decoder.decode(copy.bytes).startsWith("marker")) {
        t.fail({
          step: `copy ${n} of 3 of the request`,
          expected: "3 sends of the request in all (maxTries counts the first send)",
          actual: `only ${n - 1}`,
        });
      }
    });
  }
  await server.expectNext("marker: the client has given up", {
    step: "after 3 copies, nothing more from the client",
    explain: () => "maxTries is the number of sends in all, the first one included: 3, not 4",
  });
  const sentId = decodeMessage(server.received[0].bytes)?.id;
  t.check(error.id === sentId && error.tries === 3 && error.timeoutMs === 20, {
    step: "the RequestTimeoutError's id, tries and timeoutMs",
    expected: `id ${sentId} (the request's), tries 3, timeoutMs 20`,
    actual: `id ${error.id}, tries ${error.tries}, timeoutMs ${error.timeoutMs}`,
    note: "new RequestTimeoutError(id, this.maxTries, this.timeoutMs, server)",
  });
  t.check(client.stats.retransmissions === 2 && client.stats.requests === 1, {
    step: "client.stats after the request gave up",
    expected: "requests 1, retransmissions 2 (3 sends in all: the first and two more)",
    actual: `requests ${client.stats.requests}, retransmissions ${client.stats.retransmissions}`,
  });
});

suite.test("request ignores a stale reply with another id and returns the right one", async (t) => {
  const { ReliableClient } = await load(t);
  const server = openUdpProbe(t, "server");
  // One try of 5 s: the right reply always comes within it, so nothing is ever sent twice.
  const client = new ReliableClient({ server: server.addr, timeoutMs: 5000, maxTries: 1 });
  t.defer(() => client.close());
  const keepWaiting = "keep waiting for what is left of this try's timeoutMs (5000 ms here, " +
    "with maxTries 1): a stale or junk datagram is no reason to send again or to give up";
  const first = t.step(
    'client.request("one") (timeoutMs 5000, maxTries 1)',
    () => client.request(bytes("one")),
  );
  const one = await whileRunning(first, () => nextRequest(server, 'the grader waits for "one"'));
  // Not a message at all, then two copies of the answer, as a network that duplicates makes.
  await server.send("garbage: no id, no newline", one.from);
  await server.send(encodeMessage(one.id, "reply to one"), one.from);
  await server.send(encodeMessage(one.id, "reply to one"), one.from);
  const answer = await t.noted(
    "the server's first datagram was no message at all: when decodeMessage returns undefined, " +
      `skip the datagram like a stale reply and ${keepWaiting}`,
    () => first,
  );
  t.expectEqual(decoder.decode(answer), "reply to one", 'what client.request("one") returned');
  const second = t.step('client.request("two")', () => client.request(bytes("two")));
  const two = await whileRunning(
    second,
    () => nextRequest(server, 'the grader waits for "two"', new Set([one.id])),
  );
  await server.send(encodeMessage(two.id, "reply to two"), two.from);
  const reply = decoder.decode(
    await t.noted(
      `a stale reply (the duplicate answer to request ${one.id}) came first: skip it and ` +
        keepWaiting,
      () => second,
    ),
  );
  t.check(reply === "reply to two", {
    step: 'what client.request("two") returned',
    expected: '"reply to two"',
    actual: JSON.stringify(reply),
    note: reply === "reply to one"
      ? `that is the duplicate answer to request ${one.id}, still queued on your socket: ` +
        `accept only a reply whose id is this request's (${two.id}), and skip the rest`
      : undefined,
  });
  t.check(client.stats.staleReplies >= 1, {
    step: "client.stats.staleReplies",
    expected: "at least 1 (the duplicate answer to the first request)",
    actual: String(client.stats.staleReplies),
  });
  t.check(server.received.length === 2 && client.stats.retransmissions === 0, {
    step: "what the grader received from your client for the two requests",
    expected: "one copy of each (2 datagrams), and client.stats.retransmissions 0",
    actual: `${server.received.length} datagram(s), client.stats.retransmissions ` +
      String(client.stats.retransmissions),
    note:
      `both replies came well within timeoutMs: skip a stale or junk datagram and ${keepWaiting}`,
  });
});

suite.test("stale replies that keep coming do not hold off the retransmission", async (t) => {
  const { ReliableClient } = await load(t);
  const server = openUdpProbe(t, "server");
  const client = new ReliableClient({ server: server.addr, timeoutMs: 250, maxTries: 3 });
  t.defer(() => client.close());
  const first = t.step('client.request("one")', () => client.request(bytes("one")));
  const one = await whileRunning(first, () => nextRequest(server, 'the grader waits for "one"'));
  await server.send(encodeMessage(one.id, "reply to one"), one.from);
  t.expectEqual(decoder.decode(await first), "reply to one", 'what client.request("one") returned');
  const second = t.step(
    'client.request("two") (timeoutMs 250) while copies of the reply to "one" keep arriving',
    () => client.request(bytes("two")),
    // The retransmission comes after the request's own 250 ms, by design: a step on top of it.
    { timeoutMs: 250 + STEP_MS },
  );
  const two = await whileRunning(
    second,
    () => nextRequest(server, 'the grader waits for "two"', new Set([one.id])),
  );
  // A storm of stale duplicates, one every few ms (at most 500): none is the answer to "two".
  let stale = 0;
  const storm = setInterval(() => {
    if (stale++ >= 500) return clearInterval(storm);
    server.send(encodeMessage(one.id, "reply to one"), one.from).catch(() => {});
  }, 4);
  t.defer(() => clearInterval(storm));
  let copy: Datagram;
  try {
    copy = await t.noted(
      "no reply to this request came within timeoutMs (250 ms), so it must be sent again. Each " +
        "stale reply must not restart the wait: keep waiting only for what is left of this " +
        "try's timeoutMs (a deadline computed when the request was sent)",
      () =>
        whileRunning(second, () =>
          server.next({
            step: 'the second copy of request "two" while stale replies kept arriving',
            timeoutMs: 250 + STEP_MS, // it comes after the request's 250 ms, by design
          })),
    );
  } finally {
    clearInterval(storm);
  }
  t.check(equalBytes(copy.bytes, two.bytes), {
    step: 'the second copy of request "two"',
    expected: `the same bytes as the first: ${showBytes(two.bytes)}`,
    actual: showBytes(copy.bytes),
  });
  await server.send(encodeMessage(two.id, "reply to two"), two.from);
  t.expectEqual(
    decoder.decode(await second),
    "reply to two",
    'what client.request("two") returned',
  );
  t.check(client.stats.staleReplies >= 1, {
    step: "client.stats.staleReplies",
    expected: "at least 1 (the grader sent stale replies every few ms)",
    actual: String(client.stats.staleReplies),
  });
});

// ── part 2: the server, with the grader as its clients ──────────────────────

async function startServer(
  t: Grader,
  options: { cacheSize?: number } = {},
): Promise<
  {
    server: Lesson.ReliableServer;
    count: (payload: string) => number;
    requests: { id?: unknown; from?: unknown }[];
  }
> {
  const { startReliableServer } = await load(t);
  const counting = countingHandler();
  const server = await t.step(
    `startReliableServer({ handler${
      options.cacheSize ? `, cacheSize: ${options.cacheSize}` : ""
    } })`,
    () => startReliableServer({ handler: counting.handler, ...options }),
  );
  t.defer(() => server.close());
  return { server, count: counting.count, requests: counting.requests };
}

/** Sends one request and expects its reply as the next datagram. */
async function ask(
  probe: UdpProbe,
  server: Deno.NetAddr,
  id: number,
  payload: string,
  note?: (got: Datagram) => string | undefined,
): Promise<void> {
  await probe.send(encodeMessage(id, payload), server);
  await probe.expectNext(encodeMessage(id, `done ${payload}`), {
    step: `${probe.label} sends request ${id} "${payload}" and waits for the reply`,
    explain: note,
  });
}

function checkRuns(t: Grader, count: (payload: string) => number, payload: string, note: string) {
  const runs = count(payload);
  t.check(runs === 1, {
    step: `how often your server ran the handler for "${payload}"`,
    expected: "exactly once",
    actual: `${runs} time${runs === 1 ? "" : "s"}`,
    note,
  });
}

suite.test("the request server runs a request once and replays its reply to a repeat", async (t) => {
  const { server, count, requests } = await startServer(t);
  const a = openUdpProbe(t, "A");
  await ask(a, server.addr, 1, "alpha");
  const from = requests[0]?.from as Deno.NetAddr | undefined;
  t.check(requests[0]?.id === 1 && from?.port === a.addr.port && from?.hostname === "127.0.0.1", {
    step: "the second argument your server passed to handler(payload, request)",
    expected: `{ id: 1, from: ${addressText(a.addr)} } (the request's id and its sender)`,
    actual: `{ id: ${requests[0]?.id}, from: ${JSON.stringify(requests[0]?.from)} }`,
  });
  await ask(a, server.addr, 1, "alpha");
  checkRuns(
    t,
    count,
    "alpha",
    "a repeated request (same sender, same id) must get the cached reply; running it again " +
      "would, say, charge a card twice",
  );
  t.expectEqual(server.stats.executed, 1, "server.stats.executed");
  t.expectEqual(server.stats.duplicates, 1, "server.stats.duplicates");
});

suite.test("two clients may both use id 1: each gets its own reply", async (t) => {
  const { server, count } = await startServer(t);
  const a = openUdpProbe(t, "A");
  const b = openUdpProbe(t, "B");
  await ask(a, server.addr, 1, "from A");
  await ask(
    b,
    server.addr,
    1,
    "from B",
    (got) =>
      decoder.decode(got.bytes).includes("from A")
        ? "that is A's reply: ids are chosen by each client, so a request is known by its " +
          "sender's address AND its id together"
        : undefined,
  );
  checkRuns(t, count, "from A", "");
  checkRuns(
    t,
    count,
    "from B",
    "B's request is a different request: key the cache by sender and id",
  );
});

suite.test("a late duplicate of an older request is replayed, not run again", async (t) => {
  const { server, count } = await startServer(t);
  const a = openUdpProbe(t, "A");
  for (const [id, payload] of [[1, "first"], [2, "second"], [3, "third"]] as const) {
    await ask(a, server.addr, id, payload);
  }
  // Datagrams overtake each other: a copy of request 1 can arrive after request 3.
  await ask(a, server.addr, 1, "first");
  checkRuns(
    t,
    count,
    "first",
    "the network does not keep order: a copy of an older request can arrive after newer " +
      "ones. Remembering only the last id of each client is not enough; look the pair " +
      "(sender, id) up in the cache",
  );
});

suite.test("the request server ignores datagrams that are not requests and keeps serving", async (t) => {
  const { server, count } = await startServer(t);
  const a = openUdpProbe(t, "A");
  for (const junk of ["hello", "x\nnot a number", "", "\nno id", "12345678901\ntoo long"]) {
    await a.send(junk, server.addr);
  }
  await ask(
    a,
    server.addr,
    5,
    "after the junk",
    (got) =>
      `the next datagram from your server should be the reply to request 5, not ${
        showBytes(got.bytes, 40)
      }: send nothing back for a datagram that is not a request`,
  );
  checkRuns(t, count, "after the junk", "");
  t.expectEqual(server.stats.malformed, 5, "server.stats.malformed");
});

suite.test("the reply cache is bounded: it keeps the newest cacheSize replies", async (t) => {
  const { server, count } = await startServer(t, { cacheSize: 8 });
  const a = openUdpProbe(t, "A");
  for (let id = 1; id <= 30; id++) await ask(a, server.addr, id, `job ${id}`);
  const cached = server.cachedReplies;
  t.check(cached >= 1 && cached <= 8, {
    step: "server.cachedReplies after 30 requests with cacheSize 8",
    expected: "from 1 to 8",
    actual: String(cached),
    note: "a cache that never forgets grows with every request: a long-running server runs " +
      "out of memory. Forget the oldest reply when the cache is full",
  });
  // The newest 8 (ids 23 to 30) are all still cached: each copy is replayed, none runs again.
  for (let id = 23; id <= 30; id++) {
    await ask(a, server.addr, id, `job ${id}`);
    checkRuns(
      t,
      count,
      `job ${id}`,
      `requests 23 to 30 are the newest 8 and cacheSize is 8: all of them must still be cached. ` +
        "Forget the OLDEST reply, and only when the cache holds more than cacheSize",
    );
  }
  t.expectEqual(server.stats.duplicates, 8, "server.stats.duplicates after the 8 copies");
});

suite.test("a copy that arrives while its slow request still runs does not run it again", async (t) => {
  const { startReliableServer } = await load(t);
  const slow = gatedHandler("slow job");
  const server = await t.step(
    "startReliableServer({ handler }) with a handler that takes its time",
    () => startReliableServer({ handler: slow.handler }),
  );
  t.defer(() => server.close());
  t.defer(slow.release); // runs first: a failing check must not leave the handler waiting
  const a = openUdpProbe(t, "A");
  await a.send(encodeMessage(1, "slow job"), server.addr);
  await t.eventually("your handler starts on request 1", () => slow.started() >= 1, {
    expected: "your server to call the handler for request 1",
    actual: () => "the handler was not called",
  });
  // The client's retransmission, while the handler still works on the first copy.
  await a.send(encodeMessage(1, "slow job"), server.addr);
  await ioTurns();
  t.check(slow.started() === 1, {
    step: "a copy of request 1 arrived while your handler still ran request 1",
    expected: "the handler running request 1 once",
    actual: `the handler was called ${slow.started()} times for request 1`,
    note: "the copy found no reply in the cache yet, because the reply did not exist: a " +
      "retransmission can arrive while its request still runs. Handle one datagram at a time " +
      "(await the handler before the next receive): the copy then waits in the socket's queue " +
      "and finds the reply cached",
  });
  slow.release();
  for (const what of ["the reply to request 1", "the cached reply again, for the copy"]) {
    await a.expectNext(encodeMessage(1, "done slow job"), {
      step: `A waits for ${what}`,
    });
  }
  t.expectEqual(server.stats.executed, 1, "server.stats.executed");
  t.expectEqual(server.stats.duplicates, 1, "server.stats.duplicates");
});

suite.test("a request whose handler throws gets no reply, runs again on retry, and the server goes on", async (t) => {
  const { startReliableServer } = await load(t);
  const counting = countingHandler();
  let failures = 0;
  const server = await t.step(
    "startReliableServer({ handler }) with a handler that throws the first time",
    () =>
      startReliableServer({
        handler: (payload) => {
          if (decoder.decode(payload) === "fails once" && failures++ === 0) {
            throw new Error("the grader's handler fails on purpose");
          }
          return counting.handler(payload);
        },
      }),
  );
  t.defer(() => server.close());
  const a = openUdpProbe(t, "A");
  await a.send(encodeMessage(7, "fails once"), server.addr);
  await ask(
    a,
    server.addr,
    7,
    "fails once",
    (got) =>
      `your server answered the request whose handler threw (${
        showBytes(got.bytes, 40)
      }): send nothing for it and cache nothing, so that the client's retry runs it again`,
  ).catch(
    (error) => {
      if (error instanceof GradeFailure && error.details.kind === "timeout") {
        error.details.note = "the handler threw on the first copy of request 7, and your server " +
          "answered neither that nor the retry: catch a handler's error around the handling of " +
          "each datagram (log it, send nothing) and go on receiving";
        error.message = error.render();
      }
      throw error;
    },
  );
  t.check(failures === 2 && counting.count("fails once") === 1, {
    step: "how often your server ran the handler for request 7",
    expected: "twice: once throwing, once for the retry (nothing was cached for the failure)",
    actual: `${failures} time(s)`,
  });
  await ask(a, server.addr, 8, "after the failure");
  t.expectEqual(server.stats.executed, 2, "server.stats.executed (requests 7 and 8)");
});

suite.test("two request servers at once, one on a port it was given: each has its own cache", async (t) => {
  const { startReliableServer } = await load(t);
  const port = freePort("udp");
  const first = countingHandler();
  const second = countingHandler();
  const one = await t.step(
    `startReliableServer({ handler, hostname: "127.0.0.1", port: ${port} })`,
    () => startReliableServer({ handler: first.handler, hostname: "127.0.0.1", port }),
  );
  t.defer(() => one.close());
  t.check(one.addr.hostname === "127.0.0.1" && one.addr.port === port, {
    step: `startReliableServer({ …, port: ${port} }).addr`,
    expected: `127.0.0.1:${port}, the port it was given`,
    actual: JSON.stringify(one.addr),
    note: "bind the hostname and port in the options (defaults 127.0.0.1 and 0)",
  });
  const two = await t.step(
    "a second startReliableServer({ handler }) beside it",
    () => startReliableServer({ handler: second.handler }),
  );
  t.defer(() => two.close());
  t.check(two.addr.hostname === "127.0.0.1" && two.addr.port > 0, {
    step: "the second server's addr",
    expected: "127.0.0.1 and the port the kernel picked",
    actual: JSON.stringify(two.addr),
  });
  const a = openUdpProbe(t, "A");
  await ask(a, one.addr, 1, "to the first server");
  await ask(
    a,
    two.addr,
    1,
    "to the second server",
    (got) =>
      got.text.includes("to the first server")
        ? "that is the first server's reply: each server needs a cache of its own (create it " +
          "inside startReliableServer, not at module level)"
        : undefined,
  );
  checkRuns(t, second.count, "to the second server", "");
});

suite.test("a reply too long for one datagram is not sent, and the server goes on", async (t) => {
  const { startReliableServer, MAX_UDP_PAYLOAD } = await load(t);
  const counting = countingHandler();
  const big = MAX_UDP_PAYLOAD + 5_000;
  const server = await t.step(
    `startReliableServer({ handler }) with a handler that returns ${big} bytes for "too big"`,
    () =>
      startReliableServer({
        handler: (payload, request) =>
          decoder.decode(payload) === "too big"
            ? new Uint8Array(big).fill(0x21)
            : counting.handler(payload, request),
      }),
  );
  t.defer(() => server.close());
  const a = openUdpProbe(t, "A");
  await a.send(encodeMessage(1, "too big"), server.addr);
  await ask(
    a,
    server.addr,
    2,
    "after the big one",
    (got) =>
      decoder.decode(got.bytes.subarray(0, 2)) === "1\n"
        ? `a reply of ${got.bytes.length} bytes to request 1 arrived: the grader expected none, ` +
          `since ${big} bytes cannot go in one datagram`
        : undefined,
  ).catch((error) => {
    if (error instanceof GradeFailure && error.details.kind === "timeout") {
      error.details.note = `the reply to request 1 (${big} bytes) is longer than a datagram can ` +
        "be, so its send fails. Await each send inside the handling of its datagram, where a " +
        "failure is caught and logged like a handler's: a send nobody awaits rejects with " +
        "nobody listening, and takes the whole program down";
      error.message = error.render();
    }
    throw error;
  });
  checkRuns(t, counting.count, "after the big one", "");
  await t.step("server.close() after the failed send", () => server.close());
});

suite.test("both servers bind the hostname they are given: ::1 too", async (t) => {
  const { startEchoServer, startReliableServer } = await load(t);
  const a = openUdpProbe(t, "A6", { hostname: "::1" });
  const note = "bind options.hostname (127.0.0.1 only when none is given)";
  const echo = await t.step(
    'startEchoServer({ hostname: "::1" })',
    () => startEchoServer({ hostname: "::1" }),
  );
  t.defer(() => echo.close());
  t.check(echo.addr.hostname === "::1" && echo.addr.port > 0, {
    step: 'startEchoServer({ hostname: "::1" }).addr',
    expected: "an address on ::1, the IPv6 loopback, with the port the kernel picked",
    actual: JSON.stringify(echo.addr),
    note,
  });
  await a.send("over IPv6", echo.addr);
  await a.expectNext("over IPv6", { step: `A6 sends "over IPv6" to ${addressText(echo.addr)}` });
  const counting = countingHandler();
  const server = await t.step(
    'startReliableServer({ handler, hostname: "::1" })',
    () => startReliableServer({ handler: counting.handler, hostname: "::1" }),
  );
  t.defer(() => server.close());
  t.check(server.addr.hostname === "::1" && server.addr.port > 0, {
    step: 'startReliableServer({ handler, hostname: "::1" }).addr',
    expected: "an address on ::1, the IPv6 loopback, with the port the kernel picked",
    actual: JSON.stringify(server.addr),
    note,
  });
  await ask(a, server.addr, 1, "over IPv6");
  checkRuns(t, counting.count, "over IPv6", "");
}, { requires: ["ipv6"] });

suite.test("close() resolves only after a handler still running has finished", async (t) => {
  const { startReliableServer } = await load(t);
  const slow = gatedHandler("slow job");
  const server = await t.step(
    "startReliableServer({ handler }) with a handler that takes its time",
    () => startReliableServer({ handler: slow.handler }),
  );
  t.defer(() => server.close());
  t.defer(slow.release);
  const a = openUdpProbe(t, "A");
  await a.send(encodeMessage(1, "slow job"), server.addr);
  await t.eventually("your handler starts on request 1", () => slow.started() >= 1, {
    expected: "your server to call the handler for request 1",
    actual: () => "the handler was not called",
  });
  let closed = false;
  const closing = t.step("server.close() while the handler still runs", () => server.close())
    .then(() => closed = true);
  closing.catch(() => {}); // awaited below
  await ioTurns();
  t.check(!closed, {
    step: "server.close() while your handler still ran request 1",
    expected: "close() still pending: it resolves once the receive loop has ended",
    actual: "close() had already resolved, with the handler still running",
    note: "close() must wait for the receive loop (await it after closing the socket): a " +
      "caller that awaited close() expects nothing of the server to be running any more",
  });
  slow.release();
  await closing;
  t.check(slow.count("slow job") === 1, {
    step: "the handler after close() resolved",
    expected: "it had finished",
    actual: "it had not",
  });
});

// ── the acceptance run ──────────────────────────────────────────────────────

const LOAD = {
  requests: 500,
  clients: 10,
  seed: 7,
  drop: 0.2,
  duplicate: 0.1,
  reorder: 0.1,
  timeoutMs: 30,
  maxTries: 30,
};

suite.test(
  "500 requests through a proxy that drops 20%, duplicates and reorders: each runs exactly once",
  async (t) => {
    const { startReliableServer, ReliableClient } = await load(t);
    const counting = countingHandler();
    const server = await t.step(
      "startReliableServer({ handler })",
      () => startReliableServer({ handler: counting.handler }),
    );
    t.defer(() => server.close());
    const proxy = new UdpProxy({ target: server.addr, ...LOAD });
    t.defer(() => proxy.close());
    const clients = Array.from(
      { length: LOAD.clients },
      () =>
        new ReliableClient({
          server: proxy.addr,
          timeoutMs: LOAD.timeoutMs,
          maxTries: LOAD.maxTries,
        }),
    );
    for (const client of clients) t.defer(() => client.close());

    const wrong: string[] = [];
    const run = async (client: Lesson.ReliableClient, c: number) => {
      for (let i = c; i < LOAD.requests; i += LOAD.clients) {
        const text = `request ${i}`;
        const reply = decoder.decode(await client.request(bytes(text)));
        if (reply !== `done ${text}`) wrong.push(`${text} got ${JSON.stringify(reply)}`);
      }
    };
    await t.step(
      `${LOAD.requests} requests from ${LOAD.clients} clients (timeoutMs ${LOAD.timeoutMs}, ` +
        `maxTries ${LOAD.maxTries}) through the lossy proxy (seed ${LOAD.seed})`,
      () => Promise.all(clients.map(run)),
      { timeoutMs: 25_000 },
    );
    const figures = `proxy: ${proxy.stats.dropped} dropped, ${proxy.stats.duplicated} ` +
      `duplicated, ${proxy.stats.reordered} reordered; clients: ${
        clients.reduce((n, c) => n + c.stats.retransmissions, 0)
      } retransmissions`;
    t.check(wrong.length === 0, {
      step: "each reply belongs to its request",
      expected: "every request to get the reply to itself",
      actual: `${wrong.length} did not, e.g. ${wrong.slice(0, 3).join("; ")} (${figures})`,
      note: "a late or duplicated reply to an earlier request is still in flight: match the id",
    });
    const twice = [...counting.runs].filter(([, n]) => n > 1);
    t.check(twice.length === 0, {
      step: "how often your server ran each request",
      expected: "each of the 500 exactly once",
      actual: `${twice.length} ran more than once, e.g. ${
        twice.slice(0, 3).map(([p, n]) => `"${p}" ${n} times`).join(", ")
      } (${figures})`,
      note: "retransmissions and network duplicates arrive as copies, some late and out of " +
        "order: look every request up in the reply cache by (sender, id) before running it",
    });
    t.check(counting.runs.size === LOAD.requests, {
      step: "requests your server ran",
      expected: String(LOAD.requests),
      actual: String(counting.runs.size),
    });
    t.check(server.cachedReplies === 256, {
      step: "server.cachedReplies after 500 requests (no cacheSize given)",
      expected: "256, the default cacheSize: the newest 256 replies",
      actual: String(server.cachedReplies),
      note: "without options.cacheSize the cache keeps DEFAULT_CACHE_SIZE (256) replies",
    });
    t.check(proxy.stats.dropped > 0 && proxy.stats.duplicated > 0 && proxy.stats.reordered > 0, {
      step: "the proxy did its job (a check of the grader itself)",
      expected: "some datagrams dropped, duplicated and reordered",
      actual: figures,
    });
  },
  { timeoutMs: 40_000 },
);
