/**
 * Grading suite of lesson 02 — a TCP client that reads the whole reply.
 * Run it with `deno task lesson 2`.
 *
 * Here the learner writes the client and the grader plays the server
 * (`t.serve`): it cuts its replies into 1-byte and odd-sized writes with a
 * yield between them, packs two replies into one write, cuts characters of
 * UTF-8 and GBK in half, reads a 16 MiB request that no single write() can
 * take, hangs up half-way, and leaves a port with nobody listening. Where the
 * exact boundaries between reads matter (a two-byte delimiter cut in two), the
 * reader is fed by a scripted source instead of a socket, so the cut is
 * certain rather than likely.
 */
import {
  describeError,
  describeSplit,
  equalBytes,
  GradeFailure,
  type Grader,
  type GraderServer,
  isGradeFailure,
  nextTurn,
  type Probe,
  showBytes,
  showDifference,
  type SplitMode,
  STEP_MS,
  toBytes,
} from "../workbook/harness/mod.ts";
import { lessonSuite } from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/02-tcp-client/client.ts";

const suite = lessonSuite("02");
const load = (t: Grader) => t.load<typeof Lesson>();

/** The ways a reply is cut into writes: byte by byte, odd sizes, and random cuts from a seed. */
const SPLITS: SplitMode[] = ["bytes", [3, 1, 7, 2], { seed: 202 }];

/**
 * The budget of a step whose reply the grader sends as `split` says: one byte per write, with a
 * yield between writes, is the grader's own slow work on a busy machine (the self-check's margins
 * saw a correct client use 39 % of one step), so it gets two.
 */
function replyBudget(split: SplitMode): number {
  return split === "bytes" ? 2 * STEP_MS : STEP_MS;
}

/** Size of the big request: more than the kernel buffers take in one write() on common setups. */
const BIG_BYTES = 16 * 1024 * 1024;
/** Budget of a step that moves {@linkcode BIG_BYTES} on a busy 2-core machine. */
const BIG_STEP_MS = 15_000;
/** Budget of a whole check that moves {@linkcode BIG_BYTES}. */
const BIG_TEST_MS = 30_000;
/** How long the grader waits for the next piece of the big request before calling it stalled. */
const STALL_MS = 3000;
/** The grader reads the big request in pieces of this size, checking each. */
const PIECE_BYTES = 64 * 1024;

/** A reply with 2-, 3- and 4-byte UTF-8 characters: byte splits cut each of them. */
const UTF8_TEXT = "ack-HÉLLO WÖRLD — 世界 🌍";

/** `ack-你好，世界 說們這` in GBK. 說 is D5 66 and 這 is DF 40: their second byte looks like ASCII. */
const GBK_TEXT = "ack-你好，世界 說們這";
const GBK_REPLY = Uint8Array.of(
  ...[0x61, 0x63, 0x6b, 0x2d, 0xc4, 0xe3, 0xba, 0xc3, 0xa3, 0xac, 0xca, 0xc0, 0xbd, 0xe7],
  ...[0x20, 0xd5, 0x66, 0x82, 0x83, 0xdf, 0x40, 0x0a],
);

// ── helpers ─────────────────────────────────────────────────────────────────

/**
 * Printable ASCII that does not repeat with a short period, so a dropped or
 * repeated stretch shows up at the exact byte. Never contains `\n`.
 */
function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = 0x20 + ((i + (i >>> 12)) % 95);
  return bytes;
}

/** Bytes as hex pairs, for encodings other than UTF-8: `61 63 c4 e3`. */
function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** The grader's own connection to its server, for learner code that reads or writes a conn. */
async function dial(t: Grader, server: GraderServer): Promise<Deno.TcpConn> {
  const conn = await Deno.connect(server.addr);
  t.defer(() => {
    try {
      conn.close();
    } catch {
      // Already closed by the learner's code (LineClient.close): fine.
    }
  });
  return conn;
}

/** A port on 127.0.0.1 where nothing listens: listen on port 0, note the port, close. */
function deadAddress(): { hostname: string; port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return { hostname: "127.0.0.1", port };
}

/**
 * A byte source that hands out exactly these chunks, one per read (a chunk
 * larger than the read buffer is handed out over several reads), then `null`.
 * Each read yields to the event loop first, like a socket would.
 */
function scriptedSource(chunks: (string | Uint8Array)[]): Lesson.ByteReader & { reads: number } {
  const queue = chunks.map(toBytes);
  return {
    reads: 0,
    async read(buffer: Uint8Array) {
      this.reads++;
      await nextTurn();
      const next = queue.shift();
      if (next === undefined) return null;
      const n = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return n;
    },
  };
}

/** Checks returned bytes against the expected ones, with a caret at the first difference. */
function expectBytes(
  t: Grader,
  actual: Uint8Array,
  expected: string | Uint8Array,
  step: string,
  note?: string,
) {
  const want = toBytes(expected);
  if (!(actual instanceof Uint8Array) || !equalBytes(actual, want)) {
    t.fail({
      step,
      comparison: actual instanceof Uint8Array
        ? showDifference(want, actual)
        : `expected: ${showBytes(want)}\nactual:   ${describeError(actual)} (not a Uint8Array)`,
      note,
    });
  }
}

/**
 * Reads `expected.length` bytes on the grader's side in pieces, checking each
 * piece as it comes, so a 16 MiB request never sits in one growing buffer.
 * A stall means the client stopped writing before the end.
 */
async function receiveAll(conn: Probe, expected: Uint8Array, what: string): Promise<void> {
  for (let offset = 0; offset < expected.length;) {
    const n = Math.min(PIECE_BYTES, expected.length - offset);
    let piece: Uint8Array;
    try {
      piece = await conn.readBytes(n, { timeoutMs: STALL_MS });
    } catch (error) {
      if (!isGradeFailure(error)) throw error;
      const arrived = offset + conn.unread.length;
      throw new GradeFailure({
        kind: error.details.kind,
        step: `receive ${what}`,
        expected: `all ${expected.length} bytes`,
        actual: `${arrived} bytes arrived, then ${
          conn.ending === undefined
            ? `nothing more for ${STALL_MS} ms`
            : "your side closed the connection"
        }`,
        note: "write() takes only what fits in the kernel's send buffer and resolves to how many " +
          "bytes that was; write the rest (bytes.subarray(n)) until nothing is left",
      });
    }
    const want = expected.subarray(offset, offset + n);
    if (!equalBytes(piece, want)) {
      throw new GradeFailure({
        kind: "mismatch",
        step: `receive ${what}: bytes ${offset}–${offset + n - 1}`,
        comparison: showDifference(want, piece),
        note: "after a partial write, go on from where write() stopped — not from the start",
      });
    }
    offset += n;
  }
}

// ── Part 1: writeAll ────────────────────────────────────────────────────────

suite.test("writeAll writes every byte when write() takes only a few", async (t) => {
  const { writeAll } = await load(t);
  const bytes = pattern(300);
  const written: number[] = [];
  let calls = 0;
  // Like a socket whose send buffer is nearly full: each write takes 1 to 5 bytes.
  const stingy: Lesson.ByteWriter = {
    async write(data: Uint8Array) {
      calls++;
      // Resolve later, as a socket would; a real macrotask hop now and then keeps this fast.
      if (calls % 8 === 0) await nextTurn();
      else await Promise.resolve();
      const n = Math.min(1 + (calls % 5), data.length);
      written.push(...data.subarray(0, n));
      return n;
    },
  };
  await t.step(
    "writeAll(writer, 300 bytes) with a writer that takes 1 to 5 bytes per write",
    () => writeAll(stingy, bytes),
    { timeoutMs: 5000 },
  );
  t.check(equalBytes(Uint8Array.from(written), bytes), {
    step: "the bytes writeAll handed to write()",
    expected: "all 300 bytes, in order, over about 100 write calls",
    actual: `${written.length} bytes in ${calls} write call(s)${
      written.length === bytes.length ? ", not in the order given" : ""
    }`,
    note:
      "write() resolves to how many bytes it took; write the rest (subarray(n)) until none is left",
  });
});

suite.test("writeAll pushes a 16 MiB request through a real socket", async (t) => {
  const { writeAll } = await load(t);
  const bytes = pattern(BIG_BYTES);
  const server = t.serve((conn) => receiveAll(conn, bytes, "your 16 MiB through writeAll"));
  const conn = await dial(t, server);
  // Count what write() really took, to say so if writeAll stops early.
  let calls = 0;
  let taken = 0;
  const counted: Lesson.ByteWriter = {
    async write(data: Uint8Array) {
      calls++;
      const n = await conn.write(data);
      taken += n;
      return n;
    },
  };
  await t.step("writeAll(conn, 16 MiB)", () => writeAll(counted, bytes), {
    timeoutMs: BIG_STEP_MS,
  });
  t.check(taken === BIG_BYTES, {
    step: "what write() took before writeAll returned",
    expected: `${BIG_BYTES} bytes`,
    actual: `${taken} bytes in ${calls} write() call(s)`,
    note: "the socket took only part of the bytes in a write; loop on write()'s return value",
  });
  await t.step("the grader receives all 16 MiB", () => server.settled(), {
    timeoutMs: BIG_STEP_MS,
  });
}, { timeoutMs: BIG_TEST_MS });

// ── Part 2: ReplyReader ─────────────────────────────────────────────────────

for (const split of SPLITS) {
  suite.test(`readUntil returns a reply that arrives ${describeSplit(split)}`, async (t) => {
    const { ReplyReader } = await load(t);
    const reply = toBytes(`${UTF8_TEXT}\n`);
    const server = t.serve(async (conn) => {
      await conn.send(reply, { split });
      // Stay connected: the reply ends at "\n", not when the connection ends.
    });
    const reader = new ReplyReader(await dial(t, server));
    const got = await t.step('reader.readUntil("\\n")', () => reader.readUntil("\n"), {
      timeoutMs: replyBudget(split),
      note:
        "the reply ends at its \\n, however many reads that takes; do not wait for the server to close",
      notePlacement: "after",
    });
    expectBytes(
      t,
      got,
      reply,
      'the bytes readUntil("\\n") returned',
      "one read returns what has arrived so far: keep reading until the delimiter is in",
    );
  });
}

suite.test("readUntil keeps what came after the delimiter: two replies in one write", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.send("ack-ONE\nack-TWO\nack-THR");
    await conn.send("EE\n");
    await conn.closeWrite();
  });
  const reader = new ReplyReader(await dial(t, server));
  const note = 'the grader wrote "ack-ONE\\nack-TWO\\nack-THR" in ONE write, so one read returns ' +
    "all of it: the bytes after the first \\n are the next replies. Keep them in the reader " +
    "for the next readUntil call; do not throw them away";
  for (const [i, expected] of ["ack-ONE\n", "ack-TWO\n", "ack-THREE\n"].entries()) {
    const step = `readUntil("\\n"), call ${i + 1} of 3`;
    const got = await t.step(step, () => reader.readUntil("\n"), {
      note,
      notePlacement: "after",
    });
    expectBytes(t, got, expected, `the bytes of ${step}`, note);
  }
});

suite.test("readUntil returns an empty reply: the delimiter as its first byte", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.send("\nack-ONE\n\nack-TWO\n"); // one write: empty, ONE, empty, TWO
    await conn.closeWrite();
  });
  const reader = new ReplyReader(await dial(t, server));
  const note = "a delimiter at index 0 is found (indexOf returns 0, not -1): the reply is the " +
    "delimiter alone, an empty line";
  for (const [i, expected] of ["\n", "ack-ONE\n", "\n", "ack-TWO\n"].entries()) {
    const step = `readUntil("\\n"), call ${i + 1} of 4, on "\\nack-ONE\\n\\nack-TWO\\n"`;
    const got = await t.step(step, () => reader.readUntil("\n"), {
      note,
      notePlacement: "after",
    });
    expectBytes(t, got, expected, `the bytes of ${step}`, note);
  }
});

suite.test("readUntil finds a two-byte delimiter cut between two reads", async (t) => {
  const { ReplyReader } = await load(t);
  // Read 1 ends in "\r", read 2 starts with "\n". "lone\rcr" has a \r that ends nothing.
  const chunks = ["one\r", "\ntwo\r\nlone\rcr\r\n"];
  const reader = new ReplyReader(scriptedSource(chunks));
  const note = "the delimiter can be split across reads: after a read, search again from " +
    "(delimiter length − 1) bytes before the new bytes, not only inside the new read";
  for (const expected of ["one\r\n", "two\r\n", "lone\rcr\r\n"]) {
    const step = `readUntil("\\r\\n") on reads ${chunks.map((c) => showBytes(c)).join(", ")}`;
    const got = await t.step(step, () => reader.readUntil("\r\n"));
    expectBytes(
      t,
      got,
      expected,
      `the reply "${expected.replace(/\r/g, "\\r").replace(/\n/g, "\\n")}"`,
      note,
    );
  }
});

suite.test("readUntil finds a four-byte delimiter cut between reads at any point", async (t) => {
  const { ReplyReader } = await load(t);
  const delimiter = "\r\n\r\n";
  const note = "a delimiter of d bytes can start up to d − 1 bytes before the new ones: after a " +
    "read, search again from (delimiter length − 1) bytes before the new bytes";
  // The header block of each reply ends in \r\n\r\n; each cut puts 1, 2 or 3 of its bytes in
  // the first read. "Host: x\r\n" holds a \r\n that ends nothing.
  for (const cut of [1, 2, 3]) {
    const head = "Host: x\r\n" + delimiter.slice(0, cut);
    const chunks = [head, delimiter.slice(cut) + "body"];
    const reader = new ReplyReader(scriptedSource(chunks));
    const step = `readUntil("\\r\\n\\r\\n") on reads ${chunks.map((c) => showBytes(c)).join(", ")}`;
    const got = await t.step(step, () => reader.readUntil(delimiter), {
      note,
      notePlacement: "after",
    });
    expectBytes(t, got, "Host: x\r\n\r\n", `the bytes of ${step}`, note);
  }
});

for (const split of ["bytes", "whole"] as const) {
  suite.test(`readUntil holds replies to maxBytes, delimiter included (sent ${describeSplit(split)})`, async (t) => {
    const { ReplyReader } = await load(t);
    const replies = [
      "0123456789abcd\n", // 15 bytes: under the limit of 16
      "0123456789abcde\n", // 16 bytes: exactly the limit
      "0123456789abcdef\n", // 17 bytes: one too many
    ];
    const server = t.serve(async (conn) => {
      await conn.send(replies.join(""), { split });
      // The grader stays connected: only the limit can end the last call.
    });
    const reader = new ReplyReader(await dial(t, server));
    const where = split === "whole"
      ? "the grader sent all three replies in one write, so the 17-byte one arrived whole, " +
        "delimiter and all: check the length of a reply you found too"
      : "the grader sent the replies byte by byte";
    for (const reply of replies.slice(0, 2)) {
      const step = `readUntil("\\n", 16) on a ${reply.length}-byte reply`;
      const got = await t.step(step, () => reader.readUntil("\n", 16));
      expectBytes(
        t,
        got,
        reply,
        `the ${reply.length}-byte reply`,
        "up to maxBytes bytes, \\n included, is a reply",
      );
    }
    await t.expectError(
      `readUntil("\\n", 16) on a 17-byte reply sent ${describeSplit(split)}`,
      () => reader.readUntil("\n", 16),
      {
        name: "ReplyTooLongError",
        note: `maxBytes limits the whole reply, \\n included: 17 bytes with maxBytes 16 is one ` +
          `too many; ${where}`,
      },
    );
  });
}

suite.test("readUntil refuses a reply longer than maxBytes, without waiting for its end", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn) => {
    // A reply that never ends (the grader stays connected).
    await conn.send("x".repeat(4096));
  });
  const endless = new ReplyReader(await dial(t, server));
  await t.expectError(
    'readUntil("\\n", 1024) while the server sends 4096 bytes and no "\\n"',
    () => endless.readUntil("\n", 1024),
    {
      name: "ReplyTooLongError",
      note:
        "once maxBytes bytes are in without the delimiter, the reply can no longer fit: throw " +
        "then, instead of reading (and keeping) more",
    },
  );
  // Exactly maxBytes bytes, no delimiter, and the source has nothing more to give yet: the
  // reader must refuse now. A read asked for after that is counted, not answered.
  for (const chunks of [["x".repeat(16)], ["x".repeat(10), "x".repeat(6)]]) {
    let delivered = 0;
    let lateReads = 0;
    const queue = chunks.map(toBytes);
    const source: Lesson.ByteReader = {
      async read(buffer: Uint8Array) {
        await nextTurn();
        const next = queue.shift();
        if (next === undefined) {
          lateReads++;
          // Answer with the delimiter, so a reader that waited does not hang.
          buffer[0] = 0x0a;
          return 1;
        }
        const n = Math.min(next.length, buffer.length);
        buffer.set(next.subarray(0, n));
        if (n < next.length) queue.unshift(next.subarray(n));
        delivered += n;
        return n;
      },
    };
    const reader = new ReplyReader(source);
    const step = `readUntil("\\n", 16) after exactly 16 bytes without "\\n" (in reads of ${
      chunks.map((c) => c.length).join(" + ")
    })`;
    const outcome = await t.step(step, () =>
      reader.readUntil("\n", 16).then(
        (reply) => `it returned ${showBytes(reply)}`,
        (error) => error,
      ));
    t.check(lateReads === 0, {
      step,
      expected: "a ReplyTooLongError as soon as the 16th byte was in, with no further read",
      actual: `it asked for another read after exactly ${delivered} bytes had arrived without ` +
        `a "\\n", then ${
          typeof outcome === "string" ? outcome : `threw ${describeError(outcome)}`
        }`,
      note: "with maxBytes bytes held and no delimiter among them, the reply can no longer fit: " +
        "throw ReplyTooLongError then (#pending.length >= maxBytes), do not wait for more bytes",
    });
    t.check(outcome instanceof Error && outcome.name === "ReplyTooLongError", {
      step,
      expected: "a ReplyTooLongError",
      actual: typeof outcome === "string" ? outcome : `your code threw ${describeError(outcome)}`,
    });
  }
});

suite.test("readUntil throws IncompleteReplyError when the server closes mid-reply", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn, index) => {
    if (index === 0) await conn.send("ack-HEL", { split: [2, 1] });
    await conn.closeWrite();
  });
  const reader = new ReplyReader(await dial(t, server));
  const error = await t.expectError<Lesson.IncompleteReplyError>(
    'readUntil("\\n") when the server sends "ack-HEL" and closes',
    () => reader.readUntil("\n"),
    {
      name: "IncompleteReplyError",
      note: "read() returning null means the server will send nothing more: a reply without its " +
        "delimiter is incomplete, not a short reply",
    },
  );
  expectBytes(
    t,
    error.received,
    "ack-HEL",
    "error.received",
    "pass the bytes that did arrive to the error: they help whoever debugs the server",
  );
  const silent = new ReplyReader(await dial(t, server));
  const none = await t.expectError<Lesson.IncompleteReplyError>(
    'readUntil("\\n") when the server closes without sending anything',
    () => silent.readUntil("\n"),
    { name: "IncompleteReplyError" },
  );
  expectBytes(t, none.received, "", "error.received when nothing arrived");
});

suite.test("readToEnd returns the kept bytes and everything until the server closes", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.send("200 OK\nbody part one, "); // a header line and the start of the body, together
    await conn.send("and part two — 世界.", { split: [5, 1] });
    await conn.closeWrite();
  });
  const reader = new ReplyReader(await dial(t, server));
  const header = await t.step('readUntil("\\n")', () => reader.readUntil("\n"));
  expectBytes(t, header, "200 OK\n", "the header line");
  const body = await t.step("readToEnd()", () => reader.readToEnd(), {
    note: "readToEnd ends when read() returns null (the server closed its side)",
    notePlacement: "after",
  });
  expectBytes(
    t,
    body,
    "body part one, and part two — 世界.",
    "the body readToEnd returned",
    '"body part one, " arrived in the same read as the header: it was kept by the reader and ' +
      "must come first",
  );
  const again = await t.step(
    "readToEnd() once more, after the end of the stream",
    () => reader.readToEnd(),
  );
  expectBytes(
    t,
    again,
    "",
    "the bytes of the second readToEnd() (the stream had ended: nothing is left)",
    "readToEnd hands over the kept bytes: once returned, they are no longer kept. Empty what " +
      "you keep, or the next call returns them a second time",
  );
});

suite.test("readToEnd refuses more than maxBytes, without waiting for the end", async (t) => {
  const { ReplyReader } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.send("y".repeat(4096)); // and the grader stays connected
  });
  const reader = new ReplyReader(await dial(t, server));
  await t.expectError(
    "readToEnd(1024) while the server sends 4096 bytes and stays connected",
    () => reader.readToEnd(1024),
    {
      name: "ReplyTooLongError",
      note: "count the bytes as they come and stop once there are more than maxBytes",
    },
  );
});

suite.test("readToEnd allows exactly maxBytes, the kept bytes included", async (t) => {
  const { ReplyReader } = await load(t);
  const bodies = ["0123456789abcdef", "0123456789abcdefg"]; // 16 bytes: the limit; 17: one more
  const server = t.serve(async (conn, index) => {
    // The header and the whole body in one write: the body is all kept bytes.
    await conn.send(`200 OK\n${bodies[index]}`);
    await conn.closeWrite();
  });
  const exact = new ReplyReader(await dial(t, server));
  await t.step('readUntil("\\n")', () => exact.readUntil("\n"));
  const body = await t.step("readToEnd(16) on a 16-byte body", () => exact.readToEnd(16), {
    note: "maxBytes is the most readToEnd may return: exactly maxBytes bytes in all is fine",
    notePlacement: "after",
  });
  expectBytes(t, body, bodies[0], "the 16-byte body readToEnd(16) returned");
  const over = new ReplyReader(await dial(t, server));
  await t.step('readUntil("\\n")', () => over.readUntil("\n"));
  await t.expectError("readToEnd(16) on a 17-byte body", () => over.readToEnd(16), {
    name: "ReplyTooLongError",
    note: "count the kept bytes too: 17 bytes in all is more than maxBytes 16",
  });
});

// ── Part 3: connectTo, LineClient, request ──────────────────────────────────

suite.test("connectTo connects, and names the address when the connection is refused", async (t) => {
  const { connectTo } = await load(t);
  const server = t.serve(async () => {});
  const conn = await t.step(
    `connectTo(${JSON.stringify(server.addr)})`,
    () => connectTo(server.addr),
  );
  const remote = conn.remoteAddr;
  conn.close();
  t.check(remote.port === server.addr.port, {
    step: "the connection connectTo returned",
    expected: `a connection to 127.0.0.1:${server.addr.port}`,
    actual: `a connection to ${remote.hostname}:${remote.port}`,
  });
  const dead = deadAddress();
  const error = await t.expectError<Lesson.ServerUnavailableError>(
    `connectTo(${JSON.stringify(dead)}) where nothing listens`,
    () => connectTo(dead),
    {
      name: "ServerUnavailableError",
      note: "catch Deno.errors.ConnectionRefused and throw new ServerUnavailableError(address, " +
        "{ cause: error }) instead",
    },
  );
  t.check(error.message.includes(`127.0.0.1:${dead.port}`), {
    step: "the error's message",
    expected: `a message naming 127.0.0.1:${dead.port}`,
    actual: JSON.stringify(error.message),
  });
  t.check(error.cause instanceof Deno.errors.ConnectionRefused, {
    step: "the error's cause",
    expected: "the original Deno.errors.ConnectionRefused",
    actual: describeError(error.cause),
    note: "pass { cause: error } so the original error is not lost",
  });
});

suite.test("connectTo lets errors other than a refused connection through", async (t) => {
  const { connectTo } = await load(t);
  const bad = { hostname: "127.0.0.1", port: 70000 };
  await t.expectError(`connectTo(${JSON.stringify(bad)})`, async () => {
    const conn = await connectTo(bad);
    conn.close();
  }, {
    name: "RangeError",
    what: "Deno's own error for a port out of range, unchanged",
    note: "only Deno.errors.ConnectionRefused means 'no server there'; rethrow every other error " +
      "as it is",
  });
  // A host this lesson may not reach: Deno refuses it with NotCapable before any packet goes out.
  const denied = { hostname: "127.0.0.2", port: deadAddress().port };
  const query = { name: "net", host: `${denied.hostname}:${denied.port}` } as const;
  if (Deno.permissions.querySync(query).state !== "granted") {
    await t.expectError(
      `connectTo(${JSON.stringify(denied)}) without permission for that host`,
      async () => {
        const conn = await connectTo(denied);
        conn.close();
      },
      {
        name: "NotCapable",
        what: "Deno's own error for a missing permission, unchanged",
        note: "a missing permission is not 'no server there': test for " +
          "Deno.errors.ConnectionRefused and rethrow every other error as it is",
      },
    );
  }
});

suite.test("connectTo and request reach the host they are given (::1)", async (t) => {
  const { connectTo, request } = await load(t);
  const server = t.serve(async (conn, index) => {
    if (index === 0) return await conn.expectEnd({ step: "wait for your connectTo's connection" });
    await conn.expect("hello\n", { step: "read the request of request()" });
    await conn.send("ack-HELLO\n");
    await conn.expectEnd({ step: "wait for request() to close" });
  }, { hostname: "::1" });
  const address = { hostname: "::1", port: server.addr.port };
  const note = "connect to address.hostname and address.port, both as given: leaving the " +
    "hostname out connects to 127.0.0.1 (or whatever Deno picks), not to the server asked for";
  const conn = await t.step(`connectTo(${JSON.stringify(address)})`, () => connectTo(address), {
    note,
    notePlacement: "after",
  });
  const remote = conn.remoteAddr;
  conn.close();
  t.check(remote.hostname === "::1" && remote.port === server.addr.port, {
    step: "the connection connectTo returned",
    expected: `a connection to [::1]:${server.addr.port}`,
    actual: `a connection to ${remote.hostname}:${remote.port}`,
    note,
  });
  const reply = await t.step(
    `request(${JSON.stringify(address)}, "hello")`,
    () => request(address, "hello"),
    { note, notePlacement: "after" },
  );
  t.expectEqual(reply, "ack-HELLO", "the reply from the server on ::1");
  await t.step("the grader's server finishes", () => server.settled());
}, { requires: ["ipv6"] });

suite.test("LineClient.request removes only the final \\n: spaces and \\r stay", async (t) => {
  const { LineClient } = await load(t);
  const replies = ["  ack-X \r\n", "\n", "\tack-Y\n"];
  const server = t.serve(async (conn) => {
    for (const reply of replies) {
      await conn.readLine({ step: "read your request" });
      await conn.send(reply);
    }
  });
  const client = new LineClient(await dial(t, server));
  for (const reply of replies) {
    const shown = JSON.stringify(reply);
    const text = await t.step(
      `client.request("hi"), the server replying ${shown}`,
      () => client.request("hi"),
    );
    t.expectEqual(
      text,
      reply.slice(0, -1),
      `the reply to "hi" (the server sent ${shown})`,
      "return the reply's text exactly, without only its final \\n: spaces, tabs and a \\r " +
        "before the \\n are part of what the server said (do not trim)",
    );
  }
});

suite.test("LineClient.request decodes UTF-8 replies cut inside their characters", async (t) => {
  const { LineClient } = await load(t);
  const reply = toBytes(`${UTF8_TEXT}\n`);
  const server = t.serve(async (conn) => {
    for (const [i, split] of SPLITS.entries()) {
      await conn.expect(`hello wörld ${i + 1}\n`, {
        step: `read request ${i + 1} (UTF-8, with \\n)`,
      });
      await conn.send(reply, { split });
    }
  });
  const client = new LineClient(await dial(t, server));
  for (const [i, split] of SPLITS.entries()) {
    const text = await t.step(
      `client.request("hello wörld ${i + 1}"), reply sent ${describeSplit(split)}`,
      () => client.request(`hello wörld ${i + 1}`),
      { timeoutMs: replyBudget(split) },
    );
    t.expectEqual(
      text,
      UTF8_TEXT,
      `the reply to request ${i + 1}`,
      "decode the reply once, when all its bytes are in (without its \\n): decoding each read " +
        "on its own turns a character cut between reads into \\ufffd",
    );
  }
});

suite.test("LineClient.request decodes GBK replies cut between the two bytes of a character", async (t) => {
  const { LineClient } = await load(t);
  t.check(new TextDecoder("gbk").decode(GBK_REPLY) === `${GBK_TEXT}\n`, {
    step: "the grader's GBK fixture",
    expected: GBK_TEXT,
    actual: new TextDecoder("gbk").decode(GBK_REPLY),
  });
  const splits: SplitMode[] = ["bytes", [5, 2, 3]];
  const server = t.serve(async (conn) => {
    for (const split of splits) {
      await conn.readLine({ step: "read your request" });
      await conn.send(GBK_REPLY, { split });
    }
  });
  const client = new LineClient(await dial(t, server), { encoding: "gbk" });
  for (const split of splits) {
    const text = await t.step(
      `client.request("nihao") with { encoding: "gbk" }, reply sent ${describeSplit(split)}`,
      () => client.request("nihao"),
      { timeoutMs: replyBudget(split) },
    );
    t.expectEqual(
      text,
      GBK_TEXT,
      `the reply decoded as GBK (the grader sent the bytes ${hex(GBK_REPLY)})`,
      'decode with new TextDecoder(this.encoding): "gbk" is not UTF-8, and a GBK character is ' +
        "two bytes that a read can cut apart",
    );
  }
});

suite.test("LineClient.request uses a reply that arrived early, with the one before", async (t) => {
  const { LineClient } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.expect("one\n", { step: "read request 1" });
    // Both answers in one write: they reach the client in one read.
    await conn.send("ack-ONE\nack-TWO\n");
    await conn.expect("two\n", { step: "read request 2" });
    await conn.expect("three\n", { step: "read request 3" });
    await conn.send("ack-THREE\n");
  });
  const client = new LineClient(await dial(t, server));
  const note = 'the grader answered requests 1 and 2 in ONE write ("ack-ONE\\nack-TWO\\n"): ' +
    "the reply to request 2 had already arrived with the reply to request 1. Read every reply " +
    "through the client's one ReplyReader, which keeps those bytes";
  for (const [line, expected] of [["one", "ack-ONE"], ["two", "ack-TWO"], ["three", "ack-THREE"]]) {
    const text = await t.step(`client.request("${line}")`, () => client.request(line), {
      note,
      notePlacement: "after",
    });
    t.expectEqual(text, expected, `the reply to "${line}"`, note);
  }
});

suite.test("LineClient.request sends a 16 MiB request line whole", async (t) => {
  const { LineClient } = await load(t);
  const line = pattern(BIG_BYTES);
  // Decoded before the connection exists: the grader's own 16 MiB of work must not eat into
  // the time the receiving side allows between pieces (STALL_MS).
  const request = new TextDecoder().decode(line);
  const server = t.serve(async (conn) => {
    await receiveAll(conn, line, "your 16 MiB request line");
    await conn.expect("\n", { step: "read the \\n after the 16 MiB line" });
    await conn.send(`ack-${BIG_BYTES}\n`);
  });
  const client = new LineClient(await dial(t, server));
  const text = await t.step(
    "client.request(a 16 MiB line)",
    () => client.request(request),
    { timeoutMs: BIG_STEP_MS },
  );
  t.expectEqual(text, `ack-${BIG_BYTES}`, "the reply to the 16 MiB line");
}, { timeoutMs: BIG_TEST_MS });

suite.test("LineClient.request throws IncompleteReplyError when the server hangs up mid-reply", async (t) => {
  const { LineClient } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.readLine({ step: "read your request" });
    await conn.send("ack-HEL", { split: "bytes" });
    await conn.closeWrite();
  });
  const client = new LineClient(await dial(t, server));
  const error = await t.expectError<Lesson.IncompleteReplyError>(
    'client.request("hello") when the server sends "ack-HEL" and closes',
    () => client.request("hello"),
    {
      name: "IncompleteReplyError",
      note:
        "a reply cut short is an error, not a reply: let readUntil's IncompleteReplyError through",
    },
  );
  expectBytes(t, error.received, "ack-HEL", "error.received");
});

suite.test("request asks on a fresh connection and closes it", async (t) => {
  const { request } = await load(t);
  const server = t.serve(async (conn, index) => {
    await conn.expect(`hello ${index + 1}\n`, {
      step: `read the request on connection ${index + 1}`,
    });
    await conn.send(index === 0 ? `${UTF8_TEXT}\n` : GBK_REPLY, { split: [2, 3] });
    await conn.expectEnd({
      step: `wait for your client to close connection ${index + 1} after the reply`,
      cleanly: true,
    });
  });
  const utf8 = await t.step(`request(server, "hello 1")`, () => request(server.addr, "hello 1"));
  t.expectEqual(utf8, UTF8_TEXT, "the reply to request 1 (UTF-8, the default)");
  const gbk = await t.step(
    `request(server, "hello 2", { encoding: "gbk" })`,
    () => request(server.addr, "hello 2", { encoding: "gbk" }),
  );
  t.expectEqual(gbk, GBK_TEXT, "the reply to request 2 (GBK)", "pass the options on to the client");
  await t.step("the grader's server sees both connections closed", () => server.settled());
});

suite.test("request reports a refused connection as ServerUnavailableError", async (t) => {
  const { request } = await load(t);
  const dead = deadAddress();
  const error = await t.expectError(
    `request(${JSON.stringify(dead)}, "hello") where nothing listens`,
    () => request(dead, "hello"),
    {
      name: "ServerUnavailableError",
      note: "connect through connectTo (LineClient.connect does), which names the address",
    },
  );
  t.check(error.message.includes(`127.0.0.1:${dead.port}`), {
    step: "the error's message",
    expected: `a message naming 127.0.0.1:${dead.port}`,
    actual: JSON.stringify(error.message),
  });
});

suite.test("request closes its connection when the server hangs up without replying", async (t) => {
  const { request } = await load(t);
  const server = t.serve(async (conn) => {
    await conn.readLine({ step: "read your request" });
    await conn.close();
  });
  const error = await t.expectError<Lesson.IncompleteReplyError>(
    'request(server, "hello") when the server closes without replying',
    () => request(server.addr, "hello"),
    { name: "IncompleteReplyError" },
  );
  expectBytes(t, error.received, "", "error.received when nothing arrived");
  // A connection request() left open fails this check as "left something open".
});

suite.test("LineClient and request honour maxReplyBytes", async (t) => {
  const { LineClient, request } = await load(t);
  const replies = ["ack-0123456789\n", "ack-0123456789a\n", "ack-0123456789ab\n"]; // 15, 16, 17
  const server = t.serve(async (conn, index) => {
    if (index === 0) {
      for (const reply of replies) {
        await conn.readLine({ step: "read your request" });
        await conn.send(reply);
      }
    } else {
      await conn.readLine({ step: "read the request of request()" });
      await conn.send(replies[2]);
      await conn.expectEnd({ step: "wait for request() to close after the too-long reply" });
    }
  });
  const client = new LineClient(await dial(t, server), { maxReplyBytes: 16 });
  const note = "read every reply with this.maxReplyBytes: it is the client's limit, \\n included";
  for (const reply of replies.slice(0, 2)) {
    const text = await t.step(
      `client.request("hi") with { maxReplyBytes: 16 }, a ${reply.length}-byte reply`,
      () => client.request("hi"),
      { note },
    );
    t.expectEqual(text, reply.slice(0, -1), `the ${reply.length}-byte reply`, note);
  }
  await t.expectError(
    'client.request("hi") with { maxReplyBytes: 16 }, a 17-byte reply',
    () => client.request("hi"),
    { name: "ReplyTooLongError", what: "the client's maxReplyBytes is 16", note },
  );
  await t.expectError(
    'request(server, "hi", { maxReplyBytes: 16 }), a 17-byte reply',
    () => request(server.addr, "hi", { maxReplyBytes: 16 }),
    {
      name: "ReplyTooLongError",
      what: "the options go on to the client",
      note: "pass the options on to LineClient.connect, and close the connection in a finally",
    },
  );
  await t.step("the grader's server finishes", () => server.settled());
});
