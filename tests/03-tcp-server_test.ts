/**
 * Grading suite of lesson 03 — a TCP server: serial, then a task per connection.
 * Run it with `deno task lesson 3`.
 *
 * The protocol under test: each `\n`-terminated line is answered with `ack-`
 * and the line with its ASCII letters upper-cased; a line longer than 1024
 * bytes gets an error line and the connection is closed.
 */
import { type Grader, lessonSuite, type Probe, withNote } from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/03-tcp-server/server.ts";

const suite = lessonSuite("03");
const load = (t: Grader) => t.load<typeof Lesson>();

// The protocol, as docs/03-tcp-server.md defines it (the suite's own copy, on purpose).
const MAX_LINE = 1024;
const LINE_TOO_LONG = `error: line longer than ${MAX_LINE} bytes\n`;

/**
 * What the server must answer to `lines` (bytes or text): for each line,
 * `ack-` and the line with a–z upper-cased, its `\n` included.
 */
function ack(lines: string | Uint8Array): Uint8Array {
  const bytes = typeof lines === "string" ? new TextEncoder().encode(lines) : lines;
  const out: number[] = [];
  let lineStart = true;
  for (const byte of bytes) {
    if (lineStart) out.push(..."ack-".split("").map((c) => c.charCodeAt(0)));
    out.push(byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte);
    lineStart = byte === 0x0a;
  }
  return new Uint8Array(out);
}

const CLOSE_WAIT_NOTE = "after the client has finished sending (EOF) and got its replies, your " +
  "server must close its side: conn.close() on every path (a finally). A socket the server never " +
  "closes stays in CLOSE_WAIT and its client waits forever";

const PER_LINE_NOTE = "one reply per line, not per read(): one read can hold three lines or " +
  "half of one; keep the bytes of an unfinished line between reads and answer each line once " +
  "its \\n has arrived";

/** Closes a connection unless the learner already did. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * Runs `drive` (the grader's side of a conversation) while the learner's
 * handler runs. If the handler fails first — not implemented, a throw — that
 * is the failure to report, not a probe timing out.
 */
async function whileServing<T>(serving: Promise<unknown>, drive: () => Promise<T>): Promise<T> {
  const failed = serving.then(() => new Promise<never>(() => {}));
  return await Promise.race([drive(), failed]);
}

/**
 * Accepts one grader connection on a grader-side listener and hands the
 * accepted end to the learner's `handleConnection`, which runs in the
 * background. Returns the grader's end and the handler's promise.
 */
async function handOver(t: Grader, label = "client") {
  const { handleConnection } = await load(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  let client: Probe;
  let conn: Deno.Conn;
  try {
    client = await t.connect(listener.addr, label);
    conn = await accepted;
  } finally {
    listener.close();
  }
  const ending = t.step(
    "handleConnection(conn) serves the grader's client",
    () => handleConnection(conn),
    { timeoutMs: 5000 },
  );
  ending.catch(() => {}); // awaited below; a failure here is reported there
  t.defer(async () => {
    closeQuietly(conn);
    await ending.catch(() => {});
  });
  return { client, conn, ending };
}

/** Fails unless the learner's code already closed `conn`. */
function expectClosedByLearner(t: Grader, conn: Deno.Conn, when: string): void {
  let wasOpen = true;
  try {
    conn.close();
  } catch (error) {
    wasOpen = !(error instanceof Deno.errors.BadResource);
  }
  t.check(!wasOpen, {
    step: `is conn closed after handleConnection returned (${when})?`,
    expected: "handleConnection to have closed conn before returning",
    actual: "conn was still open: the grader closed it for you",
    note: "close conn in a finally block, so the reset and error paths close it too",
  });
}

suite.test("upperAscii upper-cases ASCII letters and leaves every other byte alone", async (t) => {
  const { upperAscii } = await load(t);
  const encode = (text: string) => new TextEncoder().encode(text);
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["ASCII text", encode("hello, World 42!"), encode("HELLO, WORLD 42!")],
    ["the bytes around a–z", encode("`az{@AZ["), encode("`AZ{@AZ[")],
    ["UTF-8 text", encode("héllo wörld ß 世界"), encode("HéLLO WöRLD ß 世界")],
    [
      "bytes that are not UTF-8",
      new Uint8Array([0x68, 0x69, 0xff, 0xfe, 0xc3, 0x28, 0x7a]),
      new Uint8Array([0x48, 0x49, 0xff, 0xfe, 0xc3, 0x28, 0x5a]),
    ],
    ["nothing", new Uint8Array(0), new Uint8Array(0)],
  ];
  for (const [what, input, expected] of cases) {
    const original = input.slice();
    const step = `upperAscii(${what})`;
    const output = await t.step(step, () => upperAscii(input));
    t.expectEqual(
      output,
      expected,
      step,
      "change only the bytes 0x61–0x7a; decoding to a string and calling toUpperCase() changes " +
        "é into É, ß into SS, and bytes that are not UTF-8 into U+FFFD",
    );
    t.expectEqual(input, original, `the input of ${step}, after the call`, "return a new array");
  }
});

suite.test("handleConnection answers each line, then closes at end of stream", async (t) => {
  const { client, ending } = await handOver(t);
  await whileServing(ending, async () => {
    await client.send("hello\nworld\n");
    await withNote(
      client.expect(ack("hello\nworld\n"), { step: "the replies to two lines sent in one write" }),
      PER_LINE_NOTE,
    );
    await client.send("\n");
    await client.expect("ack-\n", { step: "the reply to an empty line" });
    await client.send("telnet sends \\r\\n\r\n");
    await client.expect(ack("telnet sends \\r\\n\r\n"), {
      step: "the reply to a line ending in \\r\\n (the \\r is just a byte of the line)",
    });
    await client.closeWrite();
    await withNote(client.expectEnd({ cleanly: true }), CLOSE_WAIT_NOTE);
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("handleConnection replies once per line when bytes arrive one at a time", async (t) => {
  const { client, ending } = await handOver(t);
  await whileServing(ending, async () => {
    const text = "hello, world\nsecond line\n";
    await client.send(text, { split: "bytes" });
    await withNote(
      client.expect(ack(text), { step: "the replies to two lines sent byte by byte" }),
      PER_LINE_NOTE,
    );
    const more = "héllo wörld\nthree lines, ";
    await client.send(more + "and a half\nin odd pieces\n", { split: { seed: 3, maxChunk: 5 } });
    await withNote(
      client.expect(ack(more + "and a half\nin odd pieces\n"), {
        step: "the replies to lines sent in random pieces",
      }),
      PER_LINE_NOTE,
    );
    await client.closeWrite();
    await withNote(client.expectEnd({ cleanly: true }), CLOSE_WAIT_NOTE);
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("a half-closing client still gets every reply, the last line too", async (t) => {
  const { client, ending } = await handOver(t);
  await whileServing(ending, async () => {
    await client.send("first\nlast words");
    await client.expect(ack("first\n"), { step: "the reply to the complete line" });
    await client.closeWrite();
    await withNote(
      client.expect(ack("last words\n"), {
        step: "after the client's half-close, the reply to its last line (it had no \\n)",
      }),
      "end of stream ends the last line: answer it as if it ended in \\n, then close. " +
        "A half-closed client still reads, so do not drop what is left",
    );
    await withNote(client.expectEnd({ cleanly: true }), CLOSE_WAIT_NOTE);
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("handleConnection passes non-ASCII and invalid UTF-8 bytes through", async (t) => {
  const { client, ending } = await handOver(t);
  await whileServing(ending, async () => {
    const text = new TextEncoder().encode("straße, 世界, é\n");
    await client.send(text, { split: "bytes" });
    await client.expect(ack(text), {
      step: "the reply to UTF-8 text sent byte by byte (characters split across reads)",
    });
    const invalid = new Uint8Array([0x6f, 0x6b, 0xff, 0xfe, 0x20, 0xc3, 0x0a]);
    await client.send(invalid);
    await withNote(
      client.expect(ack(invalid), { step: "the reply to a line that is not valid UTF-8" }),
      "upper-case the bytes 0x61–0x7a only and copy the rest: the protocol is bytes, not text",
    );
    await client.closeWrite();
    await client.expectEnd();
  });
  await ending;
});

suite.test(`handleConnection refuses a line longer than ${MAX_LINE} bytes`, async (t) => {
  const { client, ending } = await handOver(t);
  await whileServing(ending, async () => {
    const longest = "abcdefghij".repeat(MAX_LINE / 10 + 1).slice(0, MAX_LINE) + "\n";
    await client.send(longest, { split: { seed: 7, maxChunk: 300 } });
    await withNote(
      client.expect(ack(longest), { step: `the reply to a line of exactly ${MAX_LINE} bytes` }),
      `${MAX_LINE} bytes (not counting \\n) is still allowed: refuse only from ${
        MAX_LINE + 1
      } bytes on`,
    );
    await client.send("x".repeat(MAX_LINE + 1), { split: { seed: 8, maxChunk: 300 } });
    await withNote(
      client.expect(LINE_TOO_LONG, {
        step: `the answer to ${MAX_LINE + 1} bytes without a \\n`,
      }),
      `once a line has more than ${MAX_LINE} bytes and no \\n, write the error line and close: ` +
        "a server that keeps buffering lets one client use up all its memory",
    );
    await withNote(
      client.expectEnd({ step: "your side closes after the error line" }),
      "close the connection after the error line",
    );
  });
  t.expectEqual(await ending, "too-long", "what handleConnection returned");
});

suite.test('handleConnection returns "reset" when the client resets, and closes', async (t) => {
  const { handleConnection } = await load(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const accepted = listener.accept();
  await t.reset(listener.addr, "R", "hello\n");
  const conn = await accepted;
  t.defer(() => closeQuietly(conn));
  const ending = await withNote(
    t.step("handleConnection(conn) after the client reset", () => handleConnection(conn)),
    "a reset client is routine: catch Deno.errors.ConnectionReset (and BrokenPipe, " +
      'ConnectionAborted) around your reads and writes, and return "reset"',
  );
  t.expectEqual(ending, "reset", "what handleConnection returned after the client's reset");
  expectClosedByLearner(t, conn, "reset");
});

/** Starts the learner's server of the given kind; it is closed after the test. */
async function startServer(t: Grader, kind: "serial" | "concurrent"): Promise<Lesson.LineServer> {
  const lesson = await load(t);
  const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
  const name = kind === "serial" ? "startSerialServer" : "startConcurrentServer";
  const server = await t.step(`${name}({ port: 0 })`, () => start({ port: 0 }));
  t.defer(() => server.close());
  const addr = server.addr;
  t.check(addr?.hostname === "127.0.0.1" && addr.port > 0, {
    step: `${name}({ port: 0 }).addr`,
    expected: "127.0.0.1 and the port the kernel picked",
    actual: JSON.stringify(addr),
    note: 'listen on hostname "127.0.0.1" unless told otherwise: 0.0.0.0 opens the server to the ' +
      "network",
  });
  return server;
}

/** One line and its reply. */
async function roundTrip(client: Probe, line: string, step?: string): Promise<void> {
  await client.send(line);
  await client.expect(ack(line), {
    step: step ?? `the reply to ${JSON.stringify(line)} on ${client.label}`,
  });
}

/** Half-closes and waits for the server to close its side. */
async function leave(client: Probe): Promise<void> {
  await client.closeWrite();
  await withNote(client.expectEnd({ cleanly: true }), CLOSE_WAIT_NOTE);
}

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server answers its clients, one after another`, async (t) => {
    const server = await startServer(t, kind);
    const a = await t.connect(server.addr, "A");
    await a.send("hello over tcp\nbyte by byte\n", { split: "bytes" });
    await a.expect(ack("hello over tcp\nbyte by byte\n"));
    await leave(a);
    const b = await withNote(
      t.connect(server.addr, "B"),
      "the server must go back to accept() after a client leaves",
    );
    await withNote(
      roundTrip(b, "the next client\n"),
      "after a client leaves, the server must go back to accept() and serve the next one",
    );
    await leave(b);
    await t.step("server.close()", () => server.close());
  });
}

suite.test("the serial server serves one client at a time: B waits until A leaves", async (t) => {
  const server = await startServer(t, "serial");
  const a = await t.connect(server.addr, "A");
  await roundTrip(a, "a is served\n");
  // B can connect (the kernel queues it), but a serial server is busy with A.
  const b = await t.connect(server.addr, "B");
  await b.send("b waits\n");
  await roundTrip(a, "a is still served\n");
  t.check(b.receivedTotal === 0, {
    step: "B's reply while A is still connected",
    expected: "nothing yet: the serial server serves A to the end before it accepts B",
    actual: `B got ${b.receivedTotal} byte(s) while A was connected`,
    note: "startSerialServer must await handleConnection(conn) before accepting again " +
      "(startConcurrentServer is the one that serves clients at the same time)",
  });
  await leave(a);
  await withNote(
    b.expect(ack("b waits\n"), { step: "B's reply, once A has left" }),
    "once A has left, the serial server must accept B and answer the line that waited",
  );
  await leave(b);
  await t.step("server.close()", () => server.close());
});

suite.test("the serial server keeps accepting after clients reset", async (t) => {
  const server = await startServer(t, "serial");
  const a = await t.connect(server.addr, "A");
  await roundTrip(a, "a is served\n");
  // These two reset while they wait in the queue: accept() fails for them.
  await t.reset(server.addr, "R1", "hello\n");
  await t.reset(server.addr, "R2");
  const b = await t.connect(server.addr, "B");
  await b.send("b waits\n");
  await leave(a);
  await withNote(
    b.expect(ack("b waits\n"), { step: "B's reply, after A left and R1, R2 reset in the queue" }),
    "a client that resets while it waits in the queue makes accept() throw (NotConnected): " +
      "catch that around accept() and accept again — one client must never stop the server",
  );
  await leave(b);
  // This one resets after the server accepted it: handleConnection meets the reset.
  await t.reset(server.addr, "R3", "partial li");
  const c = await t.connect(server.addr, "C");
  await withNote(
    roundTrip(c, "c after a reset\n"),
    "a client that resets must not stop the server: catch errors around handleConnection too",
  );
  await leave(c);
  await t.step("server.close()", () => server.close());
});

suite.test("the concurrent server answers B while A is connected and silent", async (t) => {
  const server = await startServer(t, "concurrent");
  const a = await t.connect(server.addr, "A");
  const b = await t.connect(server.addr, "B");
  await withNote(
    roundTrip(b, "b is not kept waiting\n", "B's reply while A is connected and silent"),
    "client A is connected and has sent nothing, so a server that awaits handleConnection(A) " +
      "before it accepts again never reaches B: start each handler without await",
  );
  await roundTrip(a, "a is served too\n", "A's reply, A has been connected all along");
  await leave(b);
  await leave(a);
  await t.step("server.close()", () => server.close());
});

const CLIENTS = 20;

suite.test(`the concurrent server serves ${CLIENTS} clients at once`, async (t) => {
  const server = await startServer(t, "concurrent");
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, (_, i) => t.connect(server.addr, `client ${i + 1}`)),
  );
  const lines = (i: number) => `line one of ${i}\nline two, client ${i}\nthree ${"z".repeat(i)}\n`;
  // Everyone talks at once: all sends, then all replies. Bounded: 20 clients, one deadline.
  await t.step(`${CLIENTS} clients send 3 lines each, in random pieces`, async () => {
    await Promise.all(
      clients.map((c, i) => c.send(lines(i), { split: { seed: i + 1, maxChunk: 7 } })),
    );
  }, { timeoutMs: 8000 });
  for (const [i, c] of clients.entries()) {
    await c.expect(ack(lines(i)), { step: `the replies on ${c.label}`, timeoutMs: 4000 });
  }
  await Promise.all(clients.map((c) => c.closeWrite()));
  for (const c of clients) {
    await withNote(c.expectEnd({ cleanly: true, timeoutMs: 4000 }), CLOSE_WAIT_NOTE);
  }
  await t.step("server.close()", () => server.close());
}, { timeoutMs: 15000 });

suite.test("the concurrent server survives clients that reset", async (t) => {
  const server = await startServer(t, "concurrent");
  const a = await t.connect(server.addr, "A");
  await roundTrip(a, "a is served\n");
  await t.reset(server.addr, "R1", "hello\n");
  await t.reset(server.addr, "R2", "half a li");
  await t.reset(server.addr, "R3");
  const b = await t.connect(server.addr, "B");
  const keepServing = "a client that resets must not stop the server: the handler runs " +
    "without await, so it needs its own try/catch (or .catch) — an unhandled rejection kills " +
    "the whole program";
  await withNote(roundTrip(b, "b after three resets\n"), keepServing);
  await withNote(roundTrip(a, "a is still served\n"), keepServing);
  await leave(a);
  await leave(b);
  await t.step("server.close()", () => server.close());
});

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server's close() closes every connection and stops accepting`, async (t) => {
    const server = await startServer(t, kind);
    const clients: Probe[] = [];
    const served = kind === "serial" ? 1 : 3;
    for (let i = 1; i <= served; i++) {
      const c = await t.connect(server.addr, `client ${i}`);
      await roundTrip(c, `client ${i} is served\n`);
      clients.push(c);
    }
    await clients[0].send("half a li"); // a line in progress when the server closes
    // Connected but not yet served (serial: waits in the queue) or silent (concurrent).
    clients.push(await t.connect(server.addr, "waiting"));
    await withNote(
      t.step("server.close()", () => server.close()),
      "close() must close the listener and every live connection (a pending read() then fails " +
        "with Interrupted), then wait for the handlers: a handler still reading from an open " +
        "connection never finishes",
    );
    for (const c of clients) {
      await withNote(
        c.expectEnd({ step: `${c.label} is closed by server.close()` }),
        "close() must close every live connection, not only the listener",
      );
    }
    let refused: string | undefined;
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      conn.close();
    } catch (error) {
      refused = error instanceof Error ? error.name : String(error);
    }
    t.check(refused === "ConnectionRefused", {
      step: "connect after server.close()",
      expected: "ConnectionRefused: the listener is closed",
      actual: refused ?? "the connection was accepted",
    });
    await t.step("server.close() a second time", () => server.close());
  });
}
