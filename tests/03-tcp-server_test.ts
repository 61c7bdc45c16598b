/**
 * Grading suite of lesson 03 — a TCP server: serial, then a task per connection.
 * Run it with `deno task lesson 3`.
 *
 * The protocol under test: each `\n`-terminated line is answered with `ack-`
 * and the line with its ASCII letters upper-cased; a line longer than 1024
 * bytes gets an error line and the connection is closed.
 */
import {
  captureLogs,
  expectedBackoff,
  freePort,
  gateListen,
  type Grader,
  heapAfterGc,
  ioTurns,
  judgeBackoffEpisode,
  lessonSuite,
  type ListenerGate,
  type LogRecord,
  logText,
  type Probe,
  recordPauses,
  showLogs,
  whileRunning,
} from "../workbook/harness/mod.ts";
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

/** What a stand-in connection does instead of the real one's read or write. */
interface ConnStub {
  read?: (real: Deno.Conn, buffer: Uint8Array) => Promise<number | null>;
  write?: (real: Deno.Conn, bytes: Uint8Array) => Promise<number>;
}

/**
 * The grader's accepted connection `real`, except for the read or write that
 * `stub` replaces; `readable` and `writable` go through the same replacements,
 * so code that uses the streams meets them too. Everything else (close,
 * addresses…) is the real connection's.
 */
function stubConn(real: Deno.Conn, stub: ConnStub): Deno.Conn {
  const read = (buffer: Uint8Array) => stub.read ? stub.read(real, buffer) : real.read(buffer);
  const write = (bytes: Uint8Array) => stub.write ? stub.write(real, bytes) : real.write(bytes);
  return new Proxy(real, {
    get(target, property) {
      if (property === "read") return read;
      if (property === "write") return write;
      if (property === "readable") {
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            const buffer = new Uint8Array(4096);
            const n = await read(buffer);
            if (n === null) controller.close();
            else controller.enqueue(buffer.subarray(0, n));
          },
        });
      }
      if (property === "writable") {
        return new WritableStream<Uint8Array>({
          async write(chunk) {
            for (let offset = 0; offset < chunk.length;) {
              offset += await write(chunk.subarray(offset));
            }
          },
          close: () => closeQuietly(target),
        });
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Accepts one grader connection on a grader-side listener and hands the
 * accepted end to the learner's `handleConnection`, which runs in the
 * background (through `stub`, when given). Returns the grader's end, the real
 * accepted end and the handler's promise.
 */
async function handOver(
  t: Grader,
  label = "client",
  stub?: ConnStub,
  step = "handleConnection(conn) serves the grader's client",
) {
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
    step,
    () => handleConnection(stub ? stubConn(conn, stub) : conn),
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
  await whileRunning(ending, async () => {
    await client.send("hello\nworld\n");
    await client.expect(ack("hello\nworld\n"), {
      step: "the replies to two lines sent in one write",
      note: PER_LINE_NOTE,
    });
    await client.send("\n");
    await client.expect("ack-\n", { step: "the reply to an empty line" });
    await client.send("telnet sends \\r\\n\r\n");
    await client.expect(ack("telnet sends \\r\\n\r\n"), {
      step: "the reply to a line ending in \\r\\n (the \\r is just a byte of the line)",
    });
    await client.closeWrite();
    await client.expectEnd({ cleanly: true, note: CLOSE_WAIT_NOTE });
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("handleConnection replies once per line when bytes arrive one at a time", async (t) => {
  const { client, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    const text = "hello, world\nsecond line\n";
    await client.send(text, { split: "bytes" });
    await client.expect(ack(text), {
      step: "the replies to two lines sent byte by byte",
      note: PER_LINE_NOTE,
    });
    const more = "héllo wörld\nthree lines, ";
    await client.send(more + "and a half\nin odd pieces\n", { split: { seed: 3, maxChunk: 5 } });
    await client.expect(ack(more + "and a half\nin odd pieces\n"), {
      step: "the replies to lines sent in random pieces",
      note: PER_LINE_NOTE,
    });
    await client.closeWrite();
    await client.expectEnd({ cleanly: true, note: CLOSE_WAIT_NOTE });
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("a half-closing client still gets every reply, the last line too", async (t) => {
  const { client, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    await client.send("first\nlast words");
    await client.expect(ack("first\n"), { step: "the reply to the complete line" });
    await client.closeWrite();
    await client.expect(ack("last words\n"), {
      step: "after the client's half-close, the reply to its last line (it had no \\n)",
      note: "end of stream ends the last line: answer it as if it ended in \\n, then close. " +
        "A half-closed client still reads, so do not drop what is left",
    });
    await client.expectEnd({ cleanly: true, note: CLOSE_WAIT_NOTE });
  });
  t.expectEqual(await ending, "eof", "what handleConnection returned after the client's EOF");
});

suite.test("handleConnection passes non-ASCII and invalid UTF-8 bytes through", async (t) => {
  const { client, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    const text = new TextEncoder().encode("straße, 世界, é\n");
    await client.send(text, { split: "bytes" });
    await client.expect(ack(text), {
      step: "the reply to UTF-8 text sent byte by byte (characters split across reads)",
    });
    const invalid = new Uint8Array([0x6f, 0x6b, 0xff, 0xfe, 0x20, 0xc3, 0x0a]);
    await client.send(invalid);
    await client.expect(ack(invalid), {
      step: "the reply to a line that is not valid UTF-8",
      note:
        "upper-case the bytes 0x61–0x7a only and copy the rest: the protocol is bytes, not text",
    });
    await client.closeWrite();
    await client.expectEnd();
  });
  await ending;
});

suite.test(`handleConnection refuses a line longer than ${MAX_LINE} bytes`, async (t) => {
  const { client, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    const longest = "abcdefghij".repeat(MAX_LINE / 10 + 1).slice(0, MAX_LINE) + "\n";
    await client.send(longest, { split: { seed: 7, maxChunk: 300 } });
    await client.expect(ack(longest), {
      step: `the reply to a line of exactly ${MAX_LINE} bytes`,
      note: `${MAX_LINE} bytes (not counting \\n) is still allowed: refuse only from ${
        MAX_LINE + 1
      } bytes on`,
    });
    await client.send("x".repeat(MAX_LINE + 1), { split: { seed: 8, maxChunk: 300 } });
    await client.expect(LINE_TOO_LONG, {
      step: `the answer to ${MAX_LINE + 1} bytes without a \\n`,
      note:
        `once a line has more than ${MAX_LINE} bytes and no \\n, write the error line and close: ` +
        "a server that keeps buffering lets one client use up all its memory",
    });
    await client.expectEnd({
      step: "your side closes after the error line",
      note: "close the connection after the error line",
    });
  });
  t.expectEqual(await ending, "too-long", "what handleConnection returned");
});

suite.test("handleConnection holds the line limit exactly, whole or in pieces", async (t) => {
  const { client, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    // Exactly MAX_LINE bytes first, and the \n only once the server has read them all.
    const full = "a".repeat(MAX_LINE);
    await client.send(full);
    await ioTurns();
    await client.send("\n");
    await client.expect(ack(`${full}\n`), {
      step: `the reply to a line of exactly ${MAX_LINE} bytes, its \\n late (in a later read)`,
      note:
        `${MAX_LINE} bytes without a \\n is not too long yet: the \\n may still come. Refuse only ` +
        `once more than ${MAX_LINE} bytes have arrived without one`,
    });
    const under = "b".repeat(MAX_LINE - 1) + "\n";
    await client.send(under);
    await client.expect(ack(under), {
      step: `the reply to a line of ${MAX_LINE - 1} bytes sent in one write`,
    });
    // A complete line that is too long, \n and all, after a short one, in ONE write.
    const over = "c".repeat(MAX_LINE + 1) + "\n";
    await client.send(`first\n${over}`);
    await client.expect(ack("first\n"), { step: "the reply to the short line before it" });
    await client.expect(LINE_TOO_LONG, {
      step: `the answer to a line of ${MAX_LINE + 1} bytes sent whole, \\n included, in one write`,
      note:
        `a line whose \\n is there but more than ${MAX_LINE} bytes away is too long too: check ` +
        "the length of every complete line, not only of the unfinished one",
    });
    await client.expectEnd({
      step: "your side closes after the error line",
      note: "close the connection after the error line",
    });
  });
  t.expectEqual(await ending, "too-long", "what handleConnection returned");
});

/** How many bytes the grader's conn.write() takes per call in the short-write check. */
const SHORT_WRITE = 3;

const WRITE_ALL_NOTE =
  "conn.write(bytes) may take only part of bytes and resolves to how many it " +
  "took: write the rest too, from where the last write stopped, until the whole reply (or error " +
  "line) is out — the way Python's sendall() does, not send()";

suite.test("handleConnection writes every reply in full when write() takes only a few bytes", async (t) => {
  // The grader's connection, except that each write() takes at most SHORT_WRITE bytes.
  const short: ConnStub = {
    write: (real, bytes) => real.write(bytes.subarray(0, SHORT_WRITE)),
  };
  const note = (label: string) =>
    t.transcript.record("grader", "note", {
      detail: `${label}: each conn.write() your code makes takes at most ${SHORT_WRITE} bytes`,
    });
  const a = await handOver(t, "A", short);
  note("A");
  await whileRunning(a.ending, async () => {
    await a.client.send("hello\nworld\nlast");
    await a.client.expect(ack("hello\nworld\n"), {
      step: `the replies to two lines, each write() taking at most ${SHORT_WRITE} bytes`,
      note: WRITE_ALL_NOTE,
    });
    await a.client.closeWrite();
    await a.client.expect(ack("last\n"), {
      step: `after the half-close, the reply to the last line, write() taking ${SHORT_WRITE} bytes`,
      note: `${WRITE_ALL_NOTE}. (And at end of stream a last line without \\n is answered too.)`,
    });
    await a.client.expectEnd({ cleanly: true, note: CLOSE_WAIT_NOTE });
  });
  t.expectEqual(await a.ending, "eof", "what handleConnection returned after the client's EOF");
  const b = await handOver(t, "B", short);
  note("B");
  await whileRunning(b.ending, async () => {
    await b.client.send("x".repeat(MAX_LINE + 1));
    await b.client.expect(LINE_TOO_LONG, {
      step: `the error line for ${MAX_LINE + 1} bytes, write() taking at most ${SHORT_WRITE} bytes`,
      note: `${WRITE_ALL_NOTE}. (And more than ${MAX_LINE} bytes without \\n are refused with it.)`,
    });
    await b.client.expectEnd({
      step: "your side closes after the error line",
      note: "close the connection after the error line",
    });
  });
  t.expectEqual(await b.ending, "too-long", "what handleConnection returned");
});

suite.test('handleConnection returns "closed" when its own server closes the connection', async (t) => {
  const { client, conn, ending } = await handOver(t);
  await whileRunning(ending, async () => {
    await roundTrip(client, "still here\n");
    await client.send("half a li");
    await ioTurns();
  });
  // What server.close() does to a live connection: close it under its handler.
  conn.close();
  const how = await t.step(
    "handleConnection(conn) after the server closed conn under it",
    () => ending,
    {
      note:
        "a read on a connection your own server closed fails with Interrupted (or BadResource): " +
        'that is not an error and not a client that left: return "closed"',
    },
  );
  t.expectEqual(
    how,
    "closed",
    "what handleConnection returned after its server closed the connection",
    'ConnectionReset/BrokenPipe/ConnectionAborted is "reset" (the client vanished); ' +
      'Interrupted/BadResource is "closed" (your server closed it)',
  );
  await client.expectEnd({ step: "the client sees the connection end" });
  // The server may close conn while the handler is not in read() (say, while it writes a reply):
  // its next read then fails with BadResource, not Interrupted. The same ending.
  let replied = false;
  const closedStep = "handleConnection(conn) when conn was closed between two reads (BadResource)";
  const second = await handOver(t, "client 2", {
    write: async (real, bytes) => {
      const n = await real.write(bytes);
      replied = true;
      return n;
    },
    read: (real, buffer) => {
      if (!replied) return real.read(buffer);
      closeQuietly(real); // what server.close() does, between two reads
      return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    },
  }, closedStep);
  t.transcript.record("grader", "note", {
    detail: "client 2: once a reply is written, the grader closes conn and the next read fails " +
      "with BadResource",
  });
  await second.client.send("one\n");
  await second.client.expect(ack("one\n"), { step: "the reply on client 2" });
  const after = await t.step(
    closedStep,
    () => second.ending,
    {
      note: "a read on a connection your own server has already closed fails with BadResource: " +
        'that is your own close too, not a bug: return "closed"',
    },
  );
  t.expectEqual(
    after,
    "closed",
    "what handleConnection returned when its read failed with BadResource",
    'Interrupted and BadResource both mean "closed": your server closed the connection',
  );
  await second.client.expectEnd({ step: "client 2 sees the connection end" });
});

/** An error no connection ending explains: a bug, as far as handleConnection knows. */
class GraderFault extends Error {
  override name = "GraderFault";
}

suite.test("handleConnection lets an unknown error through, and still closes", async (t) => {
  const { handleConnection } = await load(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  let client: Probe;
  let real: Deno.Conn;
  try {
    client = await t.connect(listener.addr, "client");
    real = await accepted;
  } finally {
    listener.close();
  }
  t.defer(() => closeQuietly(real));
  // The grader's connection, except that its second read fails with an error of no known kind.
  let reads = 0;
  const faulty = stubConn(real, {
    read: (conn, buffer) =>
      ++reads === 1 ? conn.read(buffer) : Promise.reject(new GraderFault("the disk is on fire")),
  });
  await client.send("one\n");
  await t.expectError(
    "handleConnection(conn) when conn's second read fails with an unknown error",
    () => handleConnection(faulty),
    {
      name: "GraderFault",
      what: "the read's own error, unchanged",
      note: 'sort the errors you expect (a lost client: "reset"; your own close: "closed") ' +
        "and rethrow every other one: swallowing it hides a bug",
    },
  );
  expectClosedByLearner(t, real, "an unknown error");
});

suite.test('handleConnection returns "reset" when the client resets, and closes', async (t) => {
  const { handleConnection } = await load(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const accepted = listener.accept();
  await t.reset(listener.addr, "R", "hello\n");
  const conn = await accepted;
  t.defer(() => closeQuietly(conn));
  const ending = await t.step(
    "handleConnection(conn) after the client reset",
    () => handleConnection(conn),
    {
      note: "a reset client is routine: catch Deno.errors.ConnectionReset (and BrokenPipe, " +
        'ConnectionAborted) around your reads and writes, and return "reset"',
    },
  );
  t.expectEqual(ending, "reset", "what handleConnection returned after the client's reset");
  expectClosedByLearner(t, conn, "reset");
  // A client can vanish while the server writes, too, or its connection be aborted: the same
  // ending, by other errors. The grader's connection fails that read or write itself.
  const vanished = [
    ["write", () => new Deno.errors.BrokenPipe("Broken pipe (os error 32)")],
    ["write", () => new Deno.errors.ConnectionAborted("Connection aborted (os error 103)")],
    ["read", () => new Deno.errors.ConnectionAborted("Connection aborted (os error 103)")],
  ] as const;
  for (const [op, make] of vanished) {
    const name = make().name;
    const fail = () => Promise.reject(make());
    const stub: ConnStub = op === "write" ? { write: fail } : { read: fail };
    const step = `handleConnection(conn) when conn.${op}() fails with ${name}`;
    const lost = await handOver(t, `client ${op}: ${name}`, stub, step);
    t.transcript.record("grader", "note", {
      detail: `${lost.client.label}: conn.${op}() fails with ${name}, as for a client that is gone`,
    });
    if (op === "write") await lost.client.send("hi\n");
    const how = await t.step(
      step,
      () => lost.ending,
      {
        note: `${name} from a ${op} means the client is gone, like ConnectionReset: catch ` +
          'ConnectionReset, BrokenPipe and ConnectionAborted around reads and writes and return "reset"',
      },
    );
    t.expectEqual(
      how,
      "reset",
      `what handleConnection returned when conn.${op}() failed with ${name}`,
      'ConnectionReset, BrokenPipe and ConnectionAborted all mean "reset": the client vanished',
    );
    expectClosedByLearner(t, lost.conn, `${op}: ${name}`);
  }
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

/** One line and its reply; `note` is the advice if either fails. */
async function roundTrip(
  client: Probe,
  line: string,
  options: { step?: string; note?: string } = {},
): Promise<void> {
  await client.send(line, { note: options.note });
  await client.expect(ack(line), {
    step: options.step ?? `the reply to ${JSON.stringify(line)} on ${client.label}`,
    note: options.note,
  });
}

/** Half-closes and waits for the server to close its side. */
async function leave(client: Probe): Promise<void> {
  await client.closeWrite();
  await client.expectEnd({ cleanly: true, note: CLOSE_WAIT_NOTE });
}

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server answers its clients, one after another`, async (t) => {
    const server = await startServer(t, kind);
    const a = await t.connect(server.addr, "A");
    await a.send("hello over tcp\nbyte by byte\n", { split: "bytes" });
    await a.expect(ack("hello over tcp\nbyte by byte\n"));
    await leave(a);
    const b = await t.connect(server.addr, "B", {
      note: "the server must go back to accept() after a client leaves",
    });
    await roundTrip(b, "the next client\n", {
      note: "after a client leaves, the server must go back to accept() and serve the next one",
    });
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
  await b.expect(ack("b waits\n"), {
    step: "B's reply, once A has left",
    note: "once A has left, the serial server must accept B and answer the line that waited",
  });
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
  await b.expect(ack("b waits\n"), {
    step: "B's reply, after A left and R1, R2 reset in the queue",
    note: "a client that resets while it waits in the queue makes accept() throw (NotConnected): " +
      "catch that around accept() and accept again — one client must never stop the server",
  });
  await leave(b);
  // This one resets after the server accepted it: handleConnection meets the reset.
  await t.reset(server.addr, "R3", "partial li");
  const c = await t.connect(server.addr, "C");
  await roundTrip(c, "c after a reset\n", {
    note: "a client that resets must not stop the server: catch errors around handleConnection too",
  });
  await leave(c);
  await t.step("server.close()", () => server.close());
});

suite.test("the concurrent server answers B while A is connected and silent", async (t) => {
  const server = await startServer(t, "concurrent");
  const a = await t.connect(server.addr, "A");
  const b = await t.connect(server.addr, "B");
  await roundTrip(b, "b is not kept waiting\n", {
    step: "B's reply while A is connected and silent",
    note:
      "client A is connected and has sent nothing, so a server that awaits handleConnection(A) " +
      "before it accepts again never reaches B: start each handler without await",
  });
  await roundTrip(a, "a is served too\n", { step: "A's reply, A has been connected all along" });
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
    await c.expectEnd({ cleanly: true, timeoutMs: 4000, note: CLOSE_WAIT_NOTE });
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
  await roundTrip(b, "b after three resets\n", { note: keepServing });
  await roundTrip(a, "a is still served\n", { note: keepServing });
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
    await t.step("server.close()", () => server.close(), {
      note:
        "close() must close the listener and every live connection (a pending read() then fails " +
        "with Interrupted), then wait for the handlers: a handler still reading from an open " +
        "connection never finishes",
    });
    for (const c of clients) {
      await c.expectEnd({
        step: `${c.label} is closed by server.close()`,
        note: "close() must close every live connection, not only the listener",
      });
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

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server listens on the port it is given`, async (t) => {
    const lesson = await load(t);
    const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
    const port = freePort("tcp");
    const options = { hostname: "127.0.0.1", port };
    const server = await t.step(
      `start the ${kind} server with ${JSON.stringify(options)}`,
      () => start(options),
    );
    t.defer(() => server.close());
    t.check(server.addr?.port === port, {
      step: `the ${kind} server's addr.port`,
      expected: String(port),
      actual: JSON.stringify(server.addr),
      note: "listen on options.port when it is given (port 0 only when it is not)",
    });
    const a = await t.connect({ hostname: "127.0.0.1", port }, "A");
    await roundTrip(a, "on the port i asked for\n");
    await leave(a);
    await t.step("server.close()", () => server.close());
  });
}

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server listens on the hostname it is given`, async (t) => {
    const lesson = await load(t);
    const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
    // ::1, IPv6's loopback: an address other than the default that is still this machine only.
    const options = { hostname: "::1", port: 0 };
    const server = await t.step(
      `start the ${kind} server with ${JSON.stringify(options)}`,
      () => start(options),
    );
    t.defer(() => server.close());
    const hostNote =
      'listen on options.hostname when it is given ("127.0.0.1" only when it is not)';
    t.check(server.addr?.hostname === "::1" && server.addr.port > 0, {
      step: `the ${kind} server's addr`,
      expected: '{"hostname":"::1", …} and the port the kernel picked',
      actual: JSON.stringify(server.addr),
      note: hostNote,
    });
    const a = await t.connect({ hostname: "::1", port: server.addr.port }, "A");
    await roundTrip(a, "over ipv6 loopback\n", { note: hostNote });
    await leave(a);
    await t.step("server.close()", () => server.close());
  });
}

/** Starts the learner's server behind a gate on its listener (see workbook/harness/listen_gate.ts). */
async function startGated(
  t: Grader,
  kind: "serial" | "concurrent",
  mode: "paused" | "holding",
): Promise<{ server: Lesson.LineServer; gate: ListenerGate }> {
  const lesson = await load(t);
  const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
  const name = kind === "serial" ? "startSerialServer" : "startConcurrentServer";
  const { value: server, gate } = await t.step(
    `${name}({ port: 0 })`,
    () => gateListen(() => start({ port: 0 }), mode),
  );
  t.defer(() => server.close());
  t.defer(() => gate.open()); // runs first: nothing stays held once the check is over
  return { server, gate };
}

/** Waits for a count of the gate, as a step the learner can read. */
async function gateUntil(
  t: Grader,
  gate: ListenerGate,
  condition: () => boolean,
  what: string,
  note: string,
): Promise<void> {
  await t.step(`wait until ${what}`, () => gate.until(condition, what), { note });
}

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server closes a connection accept() hands over after close() began`, async (t) => {
    const { server, gate } = await startGated(t, kind, "holding");
    // The kernel hands X to the server's accept(); the grader holds it there while close() runs.
    const x = await t.connect(server.addr, "X");
    await gateUntil(
      t,
      gate,
      () => gate.held === 1,
      "your server's accept() has X",
      "the server must be in accept() once it has started",
    );
    const closing = Promise.resolve().then(() => server.close());
    closing.catch(() => {}); // awaited below, as a step
    gate.open(); // accept() now returns X, to a server that is closing
    await t.step("server.close(), with X accepted as close() began", () => closing, {
      note: "check your closing flag after accept() returns too: a connection that arrives once " +
        "close() has begun must be closed at once, not served (close() would wait for it forever)",
    });
    await x.expectEnd({
      step: "X, accepted as close() began, is closed",
      note: "close a connection that accept() returns after close() has begun; do not serve it",
    });
  });
}

suite.test("the concurrent server keeps accepting after a client reset in the queue", async (t) => {
  const { server, gate } = await startGated(t, "concurrent", "paused");
  // The server is in accept(), but the grader keeps the call from reaching the kernel while
  // R1 connects and resets, and B connects: both wait in the queue.
  await gateUntil(
    t,
    gate,
    () => gate.waiting === 1,
    "your server calls accept()",
    "the server must be in accept() once it has started",
  );
  await t.reset(server.addr, "R1", "hello\n");
  const b = await t.connect(server.addr, "B");
  await b.send("b after a reset\n");
  gate.open(); // accept() now meets R1 first: it throws NotConnected
  await b.expect(ack("b after a reset\n"), {
    step: "B's reply, after R1 reset in the queue",
    note: "a client that resets while it waits in the queue makes accept() throw (NotConnected): " +
      "log it and accept again — one client must never stop the server",
  });
  await leave(b);
  await t.step("server.close()", () => server.close());
});

// ─── out of descriptors ──────────────────────────────────────────────────────

const BACKOFF_NOTE = "out of descriptors, accept() fails (EMFILE) while the client stays queued " +
  "in the kernel, so retrying at once only spins and floods the log. When " +
  "isOutOfDescriptors(error), await options.pause(ms) before accepting again: 10 ms first, " +
  "doubling each time up to 1000 ms; once accept() works again, the next trouble starts at " +
  "10 ms again";

const LOG_ONCE_NOTE = "log one warning when accepting runs out of descriptors, not one line per " +
  "failed attempt: log at the first failure of the episode only (no pause taken yet). Once " +
  "accept() works again the episode is over, so the next one gets its own warning";

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server backs off when accept() runs out of descriptors, warns once, and recovers`, async (t) => {
    const lesson = await load(t);
    const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
    const name = kind === "serial" ? "startSerialServer" : "startConcurrentServer";
    const records = await captureLogs(t);
    const loud = () => records.filter((r) => r.level !== "debug");
    let episodeStart = 0;
    const seen: { gate?: ListenerGate } = {}; // the gate, once the server has started
    // Each pause notes the accept() calls and the log lines (info or above) so far.
    const { pause, calls } = recordPauses(t, {
      snapshot: () => ({ accepts: seen.gate?.accepts ?? 0, logged: loud().length }),
    });
    /** accept() calls made while this pause was still running (0: it waited). */
    const acceptsDuring = (call: (typeof calls)[number]) =>
      call.after ? call.after.accepts - call.before.accepts : 0;
    const started = await t.step(
      `${name}({ port: 0, pause }) with the grader's pause`,
      () => gateListen(() => start({ port: 0, pause }), "paused"),
    );
    const server = started.value;
    const g = seen.gate = started.gate;
    t.defer(() => server.close());
    t.defer(() => g.open());
    await gateUntil(
      t,
      g,
      () => g.waiting === 1,
      "your server calls accept()",
      "the server must be in accept() once it has started",
    );

    /** One episode: `failures` accepts fail with EMFILE while `client` waits in the queue. */
    const episode = async (failures: number, label: string, which: string) => {
      calls.length = 0;
      episodeStart = loud().length;
      g.failNext(failures);
      const probe = await t.connect(server.addr, label);
      await probe.send(`${label} waits out the shortage\n`);
      t.transcript.record("grader", "note", {
        detail: `the next ${failures} accept() calls fail: Too many open files (os error 24)`,
      });
      g.open();
      // A server that pauses on a timer of its own, or gives up, is known at once, not after
      // its own pauses have run.
      await t.eventually(
        `your server's first pause, once accept() failed with EMFILE (${which} episode)`,
        () => calls.length > 0,
        {
          expected: "a call of options.pause",
          actual: () => `no call of options.pause; accept() was called ${g.accepts} time(s) in all`,
          note: BACKOFF_NOTE,
        },
      );
      await probe.expect(ack(`${label} waits out the shortage\n`), {
        step: `${label}'s reply, after ${failures} accept() calls failed with EMFILE (${which})`,
        timeoutMs: 4000,
        note: "out of descriptors is not the end of the server: pause, then accept again — the " +
          "client that waited in the queue must be served once accept() works",
      });
      // Log records (info or above) from the episode's start to the end of its last pause.
      const last = calls.at(-1)?.after;
      const during = last ? last.logged - episodeStart : 0;
      judgeBackoffEpisode(t, {
        calls,
        failures,
        which,
        failing: "accept()",
        pause: "pause",
        callsDuring: acceptsDuring,
        callsMade: () => `accept() was called ${g.accepts} time(s) in all`,
        awaitAdvice: "await the pause, then accept again",
        logged: loud().slice(episodeStart, episodeStart + during),
        backoffNote: BACKOFF_NOTE,
        logOnceNote: LOG_ONCE_NOTE,
      });
      return probe;
    };

    const a = await episode(8, "A", "first");
    if (kind === "concurrent") {
      // The loop is back in the kernel's accept(); hold its next call at the gate.
      g.pause();
      const pawn = await t.connect(server.addr, "C");
      await roundTrip(pawn, "c takes the accept that was already waiting\n");
      await gateUntil(t, g, () => g.waiting === 1, "your server calls accept() again", "");
      await leave(pawn);
      await leave(a);
    } else {
      g.pause(); // the serial loop calls accept() again only once A has left
      await leave(a);
      await gateUntil(t, g, () => g.waiting === 1, "your server calls accept() again", "");
    }
    const b = await episode(2, "B", "second");
    await leave(b);
    await t.step("server.close()", () => server.close());
  });

  suite.test(`the ${kind} server does not pause for a client that reset in the queue`, async (t) => {
    const lesson = await load(t);
    const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
    const name = kind === "serial" ? "startSerialServer" : "startConcurrentServer";
    const asked: number[] = [];
    const pause = (ms: number) => {
      asked.push(ms);
      return Promise.resolve();
    };
    const { value: server, gate } = await t.step(
      `${name}({ port: 0, pause }) with the grader's pause`,
      () => gateListen(() => start({ port: 0, pause }), "paused"),
    );
    t.defer(() => server.close());
    t.defer(() => gate.open());
    await gateUntil(
      t,
      gate,
      () => gate.waiting === 1,
      "your server calls accept()",
      "the server must be in accept() once it has started",
    );
    gate.failNext(2, () => new Deno.errors.NotConnected("Transport endpoint is not connected"));
    const a = await t.connect(server.addr, "A");
    t.transcript.record("grader", "note", {
      detail: "the next 2 accept() calls fail with NotConnected (clients that reset in the queue)",
    });
    gate.open();
    await roundTrip(a, "a after two resets in the queue\n");
    t.check(asked.length === 0, {
      step: "the pauses your server asked for after accept() failed for a client that reset",
      expected: "none: only running out of descriptors is a reason to pause",
      actual: `pause(${asked.join("), pause(")})`,
      note: "a client that reset in the queue is that client's problem: log it and accept the " +
        "next one at once. Pause only when isOutOfDescriptors(error)",
    });
    await leave(a);
    await t.step("server.close()", () => server.close());
  });

  suite.test(`the ${kind} server's pause is a real timer unless it is given one`, async (t) => {
    const lesson = await load(t);
    const start = kind === "serial" ? lesson.startSerialServer : lesson.startConcurrentServer;
    const name = kind === "serial" ? "startSerialServer" : "startConcurrentServer";
    const { value: server, gate } = await t.step(
      `${name}({ port: 0 })`,
      () => gateListen(() => start({ port: 0 }), "paused"),
    );
    t.defer(() => server.close());
    t.defer(() => gate.open());
    await gateUntil(
      t,
      gate,
      () => gate.waiting === 1,
      "your server calls accept()",
      "the server must be in accept() once it has started",
    );
    gate.failNext(3);
    const a = await t.connect(server.addr, "A");
    gate.open();
    await roundTrip(a, "a after three failed accepts\n", {
      note: "after a pause the server must accept again and serve the client that waited",
    });
    const times = gate.callTimes.slice(0, 4);
    const gaps = times.slice(1).map((time, i) => time - times[i]);
    // Timers never fire early, so these are lower bounds however busy the machine is.
    t.check(gaps.length === 3 && gaps.every((gap, i) => gap >= expectedBackoff(3)[i] - 1), {
      step: "the time between your server's accept() calls after each EMFILE",
      expected: `at least ${expectedBackoff(3).join(", ")} ms`,
      actual: gaps.map((gap) => `${gap.toFixed(1)} ms`).join(", ") || "no retry",
      note: "without options.pause, wait with a timer (the given sleep(ms)): " +
        "options.pause ?? sleep",
    });
    await leave(a);
    await t.step("server.close()", () => server.close());
  });
}

/** Clients served one after another in the memory check (after as many to warm up). */
const ROUNDS = 300;

suite.test(`the concurrent server forgets each connection once it is served`, async (t) => {
  const server = await startServer(t, "concurrent");
  const port = server.addr.port;
  const line = new TextEncoder().encode("hi\n");
  const buffer = new Uint8Array(64);
  // Raw connections, outside the transcript, so the grader's own memory stays flat.
  const serveOne = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(line);
      let got = 0;
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        got += n;
        if (got === 7) await conn.closeWrite(); // "ack-HI\n" is in: leave
      }
    } finally {
      conn.close();
    }
  };
  const serveMany = (n: number, what: string) =>
    t.step(`${n} clients, one after another (${what})`, async () => {
      for (let i = 0; i < n; i++) await serveOne();
    }, { timeoutMs: 8000 });
  await serveMany(ROUNDS, "warm-up");
  const before = heapAfterGc();
  await serveMany(ROUNDS, "measured");
  const after = heapAfterGc();
  if (before !== undefined && after !== undefined) {
    // A kept Deno.Conn with its handler's promise costs about 1 KB; the measure itself moves
    // by up to some 40 KB either way, whatever the number of clients.
    const grown = after - before;
    t.check(grown < ROUNDS * 300, {
      step: `the heap after ${ROUNDS} more clients came and went`,
      expected: `about what it was (less than ${ROUNDS * 300} bytes more)`,
      actual: `${grown} bytes more (${Math.round(grown / ROUNDS)} per client)`,
      note: "delete a connection from your map when its handler finishes (in the finally of the " +
        "task that runs it): a long-running server that keeps every finished connection runs " +
        "out of memory",
    });
  }
  await t.step("server.close()", () => server.close());
}, { timeoutMs: 15000 });

for (const kind of ["serial", "concurrent"] as const) {
  suite.test(`the ${kind} server logs each client's arrival and how it left`, async (t) => {
    const records = await captureLogs(t);
    const server = await startServer(t, kind);
    const a = await t.connect(server.addr, "A");
    const port = String((a.conn.localAddr as Deno.NetAddr).port);
    await roundTrip(a, "log my comings and goings\n");
    await leave(a);
    /** The record's text and its values, to look for the client's port and its ending in. */
    const said = (r: LogRecord) => {
      const values = Object.values(r.properties ?? {}).map((value) => {
        try {
          return String(value);
        } catch {
          return "";
        }
      });
      return [logText(r), ...values].join(" ");
    };
    const arrival = () => records.findIndex((r) => said(r).includes(port) && !/eof/i.test(said(r)));
    const departure = () => {
      const first = arrival();
      return first < 0
        ? -1
        : records.findIndex((r, i) =>
          i > first && said(r).includes(port) && /\beof\b/i.test(said(r))
        );
    };
    // The leave record comes once handleConnection has returned, which may be just after A
    // saw its end: wait for it.
    await t.eventually(
      `what your ${kind} server logged about client A (port ${port}): connect, then leave (eof)`,
      () => departure() >= 0,
      {
        expected: `a record naming A (its port ${port}) when it connected, then one naming A and ` +
          'its ending "eof" when it left',
        actual: () => showLogs(records),
        note: "log each connect with the client's address (conn.remoteAddr), and each disconnect " +
          "with the address and the Ending handleConnection returned, e.g. " +
          `"client 127.0.0.1:${port} connected", "client 127.0.0.1:${port} left (eof)": a log ` +
          "is how its operator sees who came and how they left",
      },
    );
    await t.step("server.close()", () => server.close());
  });
}
