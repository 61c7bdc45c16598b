/**
 * Grading suite of lesson 04 — streams and framing: one write is not one read.
 * Run it with `deno task lesson 4`.
 *
 * Every reader gets the same input three ways over a real connection: 1 byte
 * per write, all in one write, and cut at random points from a fixed seed
 * (printed in the step name, so a failure can be replayed). The decoders are
 * also fed directly, byte by byte, to pin down *when* they must refuse an
 * over-long line or an oversized frame header.
 */
import {
  concatBytes,
  describeError,
  describeSplit,
  equalBytes,
  type Grader,
  lessonSuite,
  nextTurn,
  type Probe,
  seededRandom,
  showBytes,
  showDifference,
  splitBytes,
  type SplitMode,
  toBytes,
} from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/04-streams-and-framing/framing.ts";

const suite = lessonSuite("04");
const load = (t: Grader) => t.load<typeof Lesson>();

/** The three ways every reader gets its input: byte by byte, coalesced, and random cuts. */
const SPLITS: SplitMode[] = ["bytes", "whole", { seed: 404 }];
/** Decoders fed directly are cheap to run: more random cuts. */
const DECODER_SPLITS: SplitMode[] = ["bytes", "whole", { seed: 404 }, { seed: 7 }, {
  seed: 2024,
  maxChunk: 5,
}];

/** The largest chunk sendFile may write at once: it streams the file, never holds it whole. */
const MAX_SEND_CHUNK = 1024 * 1024;

/** Budget of a step that reads while the grader sends `n` bytes, 1 byte per write at worst. */
const readBudgetMs = (n: number) => 4000 + 20 * n;

// ── inputs ──────────────────────────────────────────────────────────────────

/**
 * Lines with everything a line reader trips over: `\r\n`, empty lines, 2-, 3-
 * and 4-byte UTF-8 characters, a lone `\r` inside a line, and a last line
 * without a newline.
 */
const LINES_TEXT = "hello\n" +
  "\r\n" +
  "crlf line\r\n" +
  "\n" +
  "héllo wörld — 世界 🌍\n" +
  "a\rb\n" +
  "last line, no newline 🎉";
const LINES = [
  "hello",
  "",
  "crlf line",
  "",
  "héllo wörld — 世界 🌍",
  "a\rb",
  "last line, no newline 🎉",
];
const LINES_MAX = 64;

/** Bytes 0..n-1 of a reproducible pattern (so a shifted or repeated chunk shows). */
function pattern(n: number, seed = 1): Uint8Array {
  const random = seededRandom(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
}

/** A frame built by the grader itself: 4-byte big-endian length, then the payload. */
function frame(payload: Uint8Array | string): Uint8Array {
  const bytes = toBytes(payload);
  return concatBytes([header(bytes.length), bytes]);
}

/** A frame header announcing `length` bytes. */
function header(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

const FRAMES_MAX = 300;
/** Payloads with an empty frame, newline and zero bytes, a 256-byte one and one of exactly the limit. */
const FRAMES: Uint8Array[] = [
  toBytes("hello"),
  new Uint8Array(0),
  Uint8Array.from([0x0a, 0x00, 0xff, 0x0d, 0x0a, 0x00, 0x00, 0x00, 0x01]),
  pattern(256, 2),
  toBytes("wörld 🌍"),
  pattern(FRAMES_MAX, 3),
];
const FRAMES_WIRE = concatBytes(FRAMES.map(frame));

// ── helpers ─────────────────────────────────────────────────────────────────

/**
 * A connected TCP pair: `probe` is the grader's recorded end, `conn` is the
 * end handed to your code.
 */
async function connectionPair(t: Grader): Promise<{ probe: Probe; conn: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept();
    const probe = await t.connect(listener.addr);
    const conn = await accepted;
    t.defer(() => {
      try {
        conn.close();
      } catch {
        // Already closed: a web stream of the connection closes it when it ends.
      }
    });
    return { probe, conn };
  } finally {
    listener.close();
  }
}

/**
 * Runs `read` (your code) as a step while the grader sends `input` split as
 * `split`, then (unless `end: false`) shuts down its sending side: your
 * reads happen while the bytes trickle in, not after they all arrived.
 */
async function readWhileSending<T>(
  t: Grader,
  probe: Probe,
  input: Uint8Array,
  split: SplitMode,
  step: string,
  read: () => Promise<T>,
  options: { end?: boolean } = {},
): Promise<T> {
  const reading = t.step(step, read, { timeoutMs: readBudgetMs(input.length) });
  reading.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled
  const sending = (async () => {
    await probe.send(input, { split });
    if (options.end !== false) await probe.closeWrite();
  })();
  sending.catch(() => {});
  let result: T;
  try {
    result = await reading;
  } catch (error) {
    await sending.catch(() => {});
    throw error;
  }
  await sending;
  return result;
}

/** Fails unless `actual` lists the same frames as `expected`, naming the first that differs. */
function expectFrames(t: Grader, actual: Uint8Array[], expected: Uint8Array[], step: string) {
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    if (i >= actual.length) {
      t.fail({
        step,
        expected: `${expected.length} frames`,
        actual: `${actual.length} frames; frame ${i + 1} (${expected[i].length} bytes: ${
          showBytes(expected[i], 40)
        }) is missing`,
      });
    }
    if (i >= expected.length) {
      t.fail({
        step,
        expected: `${expected.length} frames`,
        actual: `an extra frame ${i + 1}: ${showBytes(actual[i], 40)}`,
      });
    }
    if (!equalBytes(actual[i], expected[i])) {
      t.fail({
        step: `${step}: frame ${i + 1} of ${expected.length}`,
        comparison: showDifference(expected[i], actual[i]),
      });
    }
  }
}

/**
 * Feeds `chunks` to a decoder the way a reader does: every chunk is copied
 * into one reused scratch buffer first (a decoder must keep its own copy),
 * and after each push every complete item is taken out.
 */
function feedDecoder<T>(
  chunks: Uint8Array[],
  push: (chunk: Uint8Array) => void,
  next: () => T | undefined,
  taken: T[],
): void {
  const scratch = new Uint8Array(Math.max(1, ...chunks.map((c) => c.length)));
  for (const chunk of chunks) {
    scratch.set(chunk);
    push(scratch.subarray(0, chunk.length));
    scratch.fill(0x3f); // "?": bytes a decoder wrongly kept a view of turn into question marks
    for (let item = next(); item !== undefined; item = next()) taken.push(item);
  }
}

/** Reads every line until `null`, then checks that a further call is `null` too. */
async function readAllLines(reader: Lesson.LineReader): Promise<(string | null)[]> {
  const lines: (string | null)[] = [];
  for (let line = await reader.readLine(); line !== null; line = await reader.readLine()) {
    lines.push(line);
    if (lines.length > 100) break; // a reader that never returns null
  }
  lines.push(await reader.readLine()); // once more after the end: still null
  return lines;
}

/** Reads every frame until `null`, bounded. */
async function readAllFrames(reader: Lesson.FrameReader): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  for (let f = await reader.readFrame(); f !== null; f = await reader.readFrame()) {
    frames.push(f);
    if (frames.length > 100) break;
  }
  return frames;
}

/**
 * A connection stand-in (any `ByteReader` will do for the readers): each read
 * hands out the next scripted chunk; with none left it waits, like a
 * connection that stays open, until `end()` (EOF). It counts reads, and
 * `starved` resolves the moment a read finds nothing left to hand out.
 */
class ScriptedReader implements Lesson.ByteReader {
  reads = 0;
  readonly #starved = Promise.withResolvers<void>();
  readonly starved = this.#starved.promise;
  #chunks: Uint8Array[];
  #ended = false;
  #waiting: ((n: number | null) => void) | undefined;

  constructor(chunks: (string | Uint8Array)[]) {
    this.#chunks = chunks.map(toBytes);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.reads++;
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      const n = Math.min(chunk.length, buffer.length);
      buffer.set(chunk.subarray(0, n));
      if (n < chunk.length) this.#chunks.unshift(chunk.subarray(n));
      return Promise.resolve(n);
    }
    if (this.#ended) return Promise.resolve(null);
    this.#starved.resolve();
    return new Promise((resolve) => this.#waiting = resolve);
  }

  /** The peer finishes sending: a waiting read (and every later one) returns null. */
  end(): void {
    this.#ended = true;
    this.#waiting?.(null);
    this.#waiting = undefined;
  }
}

/**
 * Calls `next()` (a reader's readLine/readFrame) and returns what it gave,
 * or "starved" when it asked the scripted connection for bytes it does not
 * have yet (and so waits for them).
 */
async function nextOrStarved<T>(
  t: Grader,
  step: string,
  source: ScriptedReader,
  next: () => Promise<T>,
): Promise<{ value: T } | "starved"> {
  return await t.step(step, () => {
    const result = next().then((value) => ({ value }));
    result.catch(() => {}); // a reader still waiting when the check ends settles at end()
    return Promise.race([result, source.starved.then(() => "starved" as const)]);
  });
}

// ── part 1: a stream of bytes ───────────────────────────────────────────────

suite.test("readChunks yields each read as its own copy, never more than size bytes", async (t) => {
  const { readChunks } = await load(t);
  const cases: { bytes: Uint8Array; split: SplitMode; size?: number }[] = [
    { bytes: pattern(5000, 11), split: "whole", size: 1024 },
    { bytes: pattern(3000, 12), split: "whole" },
    { bytes: pattern(200, 13), split: { seed: 404 }, size: 7 },
  ];
  for (const { bytes, split, size } of cases) {
    const { probe, conn } = await connectionPair(t);
    const call = `readChunks(conn${size === undefined ? "" : `, ${size}`})`;
    // Keep every chunk until the end: chunks that share one buffer show up as garbage.
    const chunks = await readWhileSending(
      t,
      probe,
      bytes,
      split,
      `${call} while the grader sends ${bytes.length} bytes ${describeSplit(split)}`,
      async () => {
        const all: Uint8Array[] = [];
        for await (const chunk of readChunks(conn, size)) {
          all.push(chunk);
          if (all.length > 10_000) break;
        }
        return all;
      },
    );
    const limit = size ?? 1024;
    const oversized = chunks.find((c) => c.length > limit || c.length === 0);
    t.check(oversized === undefined, {
      step: `${call}: chunk sizes`,
      expected: `chunks of 1 to ${limit} bytes (one read each${
        size ? "" : "; the default size is 1024"
      })`,
      actual: `a chunk of ${oversized?.length} bytes`,
    });
    if (!equalBytes(concatBytes(chunks), bytes)) {
      t.fail({
        step: `${call}: the ${chunks.length} chunks joined after the last read, against the ` +
          `${bytes.length} bytes the grader sent`,
        comparison: showDifference(bytes, concatBytes(chunks)),
        note: "yield a copy of each read (buffer.slice(0, n)): a view of your read buffer " +
          "(subarray) is overwritten by the next read while the caller still holds it",
      });
    }
    conn.close();
  }
});

suite.test("writeAll and writeFrame write every byte even when write() takes only a few", async (t) => {
  const { writeAll, writeFrame } = await load(t);
  const written: number[] = [];
  let calls = 0;
  // A writer like a socket with a full send buffer: each write takes at most 3 bytes.
  const stingy: Lesson.ByteWriter = {
    async write(data: Uint8Array) {
      calls++;
      await nextTurn();
      const n = Math.min(3, data.length);
      written.push(...data.subarray(0, n));
      return n;
    },
  };
  const bytes = pattern(100, 21);
  await t.step(
    "writeAll(writer, 100 bytes) with a writer that takes ≤ 3 bytes per write",
    () => writeAll(stingy, bytes),
  );
  t.check(equalBytes(Uint8Array.from(written), bytes), {
    step: "the bytes writeAll wrote",
    expected: `all 100 bytes in order (${Math.ceil(100 / 3)} or more write calls)`,
    actual: `${written.length} bytes in ${calls} write call(s)`,
    note: "write() returns how many bytes it took; write the rest (subarray(n)) until none is left",
  });

  written.length = 0;
  const payload = toBytes("a frame that needs several writes");
  await t.step(
    "writeFrame(writer, payload) with the same writer",
    () => writeFrame(stingy, payload),
  );
  if (!equalBytes(Uint8Array.from(written), frame(payload))) {
    t.fail({
      step: "the bytes writeFrame wrote",
      comparison: showDifference(frame(payload), Uint8Array.from(written)),
      note: `a frame is the payload's length as a 4-byte big-endian integer ` +
        `(${showBytes(header(payload.length))} for ${payload.length} bytes), then the payload`,
    });
  }

  written.length = 0;
  await t.expectError(
    "writeFrame(writer, 101 bytes, 100): maxFrameBytes given",
    () => writeFrame(stingy, pattern(101, 22), 100),
    {
      name: "FrameTooLargeError",
      what: "a payload over the maxFrameBytes passed to writeFrame",
      note: "writeFrame(writer, payload, maxFrameBytes) encodes with that limit, not the default",
    },
  );
  t.check(written.length === 0, {
    step: "the bytes writeFrame wrote for a payload over its limit",
    expected: "none: the frame is refused before anything is written",
    actual: `${written.length} bytes`,
  });
  const limit = pattern(100, 23);
  await t.step(
    "writeFrame(writer, 100 bytes, 100): exactly the limit",
    () => writeFrame(stingy, limit, 100),
  );
  t.check(equalBytes(Uint8Array.from(written), frame(limit)), {
    step: "the bytes writeFrame wrote for a payload of exactly maxFrameBytes",
    expected: `the whole ${frame(limit).length}-byte frame`,
    actual: `${written.length} bytes: ${showBytes(Uint8Array.from(written), 24)}`,
  });

  const { probe, conn } = await connectionPair(t);
  await t.step("writeFrame(conn, payload) on a real connection", () => writeFrame(conn, payload));
  await probe.expect(frame(payload), { step: "read the frame your writeFrame sent" });
});

// ── part 2: lines ───────────────────────────────────────────────────────────

suite.test("LineDecoder splits bytes into lines, however they are cut", async (t) => {
  const { LineDecoder } = await load(t);
  const bytes = toBytes(LINES_TEXT);
  for (const split of DECODER_SPLITS) {
    const step = `LineDecoder: push ${bytes.length} bytes ${describeSplit(split)}, ` +
      `take lines after each push, finish()`;
    const lines = await t.step(step, () => {
      const decoder = new LineDecoder({ maxLineBytes: LINES_MAX });
      const out: string[] = [];
      feedDecoder(splitBytes(bytes, split), (c) => decoder.push(c), () => decoder.nextLine(), out);
      const last = decoder.finish();
      if (last !== null) out.push(last);
      return out;
    });
    t.expectEqual(
      lines,
      LINES,
      `${step}: the lines of ${showBytes(bytes, 200)}`,
      "the usual causes: dropping the bytes after a newline (they start the next line); " +
        "keeping a view of the pushed chunk instead of your own copy (the caller reuses its " +
        "buffer); decoding before a line is complete (split characters become �); leaving the " +
        "\\r of \\r\\n in the line (a lone \\r stays); losing the last line, which has no " +
        "newline (finish() returns it)",
    );
  }
});

suite.test("LineDecoder accepts a line of exactly maxLineBytes and refuses a longer one at once", async (t) => {
  const { LineDecoder } = await load(t);
  const max = 10;
  /**
   * Pushes `bytes` one at a time, taking every line nextLine() has after each, until the decoder
   * throws LineTooLongError: the lines taken, how many bytes were pushed, and the error, if any.
   */
  const pushUntilTooLong = (decoder: Lesson.LineDecoder, bytes: Uint8Array) => {
    const lines: string[] = [];
    let pushed = 0;
    for (const byte of bytes) {
      pushed++;
      try {
        decoder.push(Uint8Array.of(byte));
        for (let line = decoder.nextLine(); line !== undefined; line = decoder.nextLine()) {
          lines.push(line);
        }
      } catch (error) {
        if (!(error instanceof Error) || error.name !== "LineTooLongError") throw error;
        return { lines, pushed, thrown: error as Error };
      }
    }
    return { lines, pushed, thrown: undefined };
  };
  const pushBytes = (decoder: Lesson.LineDecoder, text: string) => {
    const out: string[] = [];
    try {
      feedDecoder(
        splitBytes(toBytes(text), "bytes"),
        (c) => decoder.push(c),
        () => decoder.nextLine(),
        out,
      );
    } catch (error) {
      if (!(error instanceof Error) || error.name !== "LineTooLongError") throw error;
      out.push(`(your decoder threw ${error.name}: ${error.message})`);
    }
    return out;
  };
  for (const text of ["0123456789\n", "0123456789\r\n", "ééééé\n"]) {
    const step = `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(text)} ` +
      `(${toBytes(text).length} bytes) 1 byte at a time`;
    const lines = await t.step(step, () => pushBytes(new LineDecoder({ maxLineBytes: max }), text));
    t.expectEqual(
      lines,
      [text.replace(/\r?\n$/, "")],
      step,
      `a line of exactly ${max} bytes is allowed, \\r\\n not counted (and é is 2 bytes)`,
    );
  }

  // One byte too many: the error must come with that byte, not at a newline that may never come.
  const long = toBytes("ok\n" + "x".repeat(max + 1) + "y".repeat(500) + "\n");
  const step = `LineDecoder({ maxLineBytes: ${max} }): push "ok\\n" then a line of ` +
    `${max + 501} bytes, 1 byte at a time, calling nextLine() after each`;
  const { lines: taken, pushed, thrown } = await t.step(
    step,
    () => pushUntilTooLong(new LineDecoder({ maxLineBytes: max }), long),
  );
  t.expectEqual(taken, ["ok"], `${step}: the lines before the long one`);
  const due = 3 + max + 1;
  t.check(thrown !== undefined, {
    step,
    expected: `a LineTooLongError when byte ${due} arrives (the line has ${
      max + 1
    } bytes and no end)`,
    actual: "no error at all, not even at the newline",
  });
  t.check(pushed === due, {
    step,
    expected: `the LineTooLongError when byte ${due} arrives: ${max + 1} bytes with no newline ` +
      `already prove the line is too long`,
    actual: `it came after ${pushed} bytes`,
    note: pushed > due
      ? "waiting for the newline means buffering without limit: a peer that never sends one " +
        "fills your memory. Check the length of the unfinished line in nextLine()"
      : `a line of exactly ${max} bytes is allowed (and ${max} bytes then \\r may still end in \\r\\n)`,
  });
  const error = thrown as Error & { lineNumber?: unknown; maxLineBytes?: unknown };
  t.expectEqual(
    { lineNumber: error.lineNumber, maxLineBytes: error.maxLineBytes },
    { lineNumber: 2, maxLineBytes: max },
    "the LineTooLongError's lineNumber and maxLineBytes",
    "lines are counted from 1; the long one is the second line",
  );

  // A \r is excused only as the one byte past the limit: a \n after it ends the line. A second
  // byte past the limit proves the line too long, whatever that byte is (a \r included).
  const crs = toBytes("0123456789\r\r" + "\r".repeat(50) + "\n");
  const crStep = `LineDecoder({ maxLineBytes: ${max} }): push ${
    showBytes("0123456789\r\r")
  } then 50 more \\r and a \\n, 1 byte at a time, calling nextLine() after each`;
  const { lines: crTaken, pushed: crPushed, thrown: crThrown } = await t.step(
    crStep,
    () => pushUntilTooLong(new LineDecoder({ maxLineBytes: max }), crs),
  );
  const crDue = max + 2;
  t.check(crThrown !== undefined && crPushed === crDue, {
    step: crStep,
    expected: `a LineTooLongError when byte ${crDue} (the second \\r) arrives: ${max} bytes and ` +
      `\\r\\r can no longer end within the limit (the first \\r is the line's ${max + 1}th byte)`,
    actual: crThrown === undefined
      ? `no error; nextLine() returned ${JSON.stringify(crTaken)}`
      : `it came after ${crPushed} bytes`,
    note: `only the one byte after ${max} may be a \\r that a \\n would turn into \\r\\n; ` +
      `more than ${
        max + 1
      } bytes without a newline are too long whatever the last one is, so the ` +
      `decoder never holds more than maxLineBytes + 1 bytes of an unfinished line`,
  });
  const crWhole = "01234567890\r";
  const crWholeDecoder = new LineDecoder({ maxLineBytes: max });
  await t.expectError(
    `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(crWhole)} (${
      toBytes(crWhole).length
    } bytes) in one piece, then nextLine()`,
    () => {
      crWholeDecoder.push(toBytes(crWhole));
      crWholeDecoder.nextLine();
    },
    {
      name: "LineTooLongError",
      what: `${max + 1} bytes before the \\r: a \\n after it cannot save the line`,
      note: "a last byte \\r excuses only a pending line of exactly maxLineBytes + 1 bytes",
    },
  );

  const bytes12 = "éééééé"; // 6 characters, 12 bytes
  const last = new LineDecoder({ maxLineBytes: max });
  await t.expectError(
    `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(bytes12)} (6 characters, 12 bytes) ` +
      `in one piece, then nextLine()`,
    () => {
      last.push(toBytes(bytes12));
      last.nextLine();
      last.finish();
    },
    { name: "LineTooLongError", what: `for 12 bytes: the limit counts bytes, not characters` },
  );
});

suite.test("LineDecoder applies the limit to whole lines in one push and to the last line", async (t) => {
  const { LineDecoder } = await load(t);
  const max = 10;
  /** Pushes `text` in one piece and takes lines until undefined or a LineTooLongError. */
  const takeAll = (decoder: Lesson.LineDecoder, text: string) => {
    const lines: string[] = [];
    decoder.push(toBytes(text));
    try {
      for (let line = decoder.nextLine(); line !== undefined; line = decoder.nextLine()) {
        lines.push(line);
      }
    } catch (error) {
      return { lines, error };
    }
    return { lines, error: undefined };
  };
  const exact = "0123456789\r\n0123456789\n";
  const fits = await t.step(
    `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(exact)} in one piece`,
    () => takeAll(new LineDecoder({ maxLineBytes: max }), exact),
  );
  t.expectEqual(
    { lines: fits.lines, error: fits.error && describeError(fits.error) },
    { lines: ["0123456789", "0123456789"], error: undefined },
    `the lines of ${showBytes(exact)} (two lines of exactly ${max} bytes)`,
  );
  for (const text of ["ok\n01234567890\nafter\n", "ok\r\n01234567890\r\nafter\r\n"]) {
    const step = `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(text)} in one piece, ` +
      "then nextLine() until it throws";
    const got = await t.step(step, () => takeAll(new LineDecoder({ maxLineBytes: max }), text));
    const error = got.error as
      | (Error & { lineNumber?: unknown; maxLineBytes?: unknown })
      | undefined;
    t.check(error instanceof Error && error.name === "LineTooLongError", {
      step,
      expected: `a LineTooLongError for line 2 (${max + 1} bytes), although its newline came ` +
        "in the same push",
      actual: error === undefined
        ? `no error: your decoder returned ${JSON.stringify(got.lines)}`
        : `your code threw ${describeError(error)}`,
      note: "the limit holds for every line, not only for one still waiting for its newline: " +
        "compare the length of a complete line (without \\n or \\r\\n) with maxLineBytes too",
    });
    t.expectEqual(got.lines, ["ok"], `${step}: the lines before the long one`);
    t.expectEqual(
      { lineNumber: error!.lineNumber, maxLineBytes: error!.maxLineBytes },
      { lineNumber: 2, maxLineBytes: max },
      `${step}: the LineTooLongError's lineNumber and maxLineBytes`,
      "lines are counted from 1; the long one is the second line",
    );
  }

  // The last line, at the end of the stream: the same limit, its bytes as they are.
  const cases: [string, string | null, string][] = [
    ["ok\n0123456789", "0123456789", `exactly ${max} bytes is allowed`],
    ["ok\nabc\r", "abc\r", "a \\r not followed by \\n is an ordinary byte of the line"],
    [
      "ok\n0123456789\r",
      null,
      `${max + 1} bytes: the \\r stays in the last line, so it is too long`,
    ],
  ];
  for (const [text, last, why] of cases) {
    const decoder = new LineDecoder({ maxLineBytes: max });
    const step =
      `LineDecoder({ maxLineBytes: ${max} }): push ${showBytes(text)}, take the lines, ` +
      "then finish() (the stream ended)";
    const taken = await t.step(step, () => takeAll(decoder, text));
    t.expectEqual(
      { lines: taken.lines, error: taken.error && describeError(taken.error) },
      { lines: ["ok"], error: undefined },
      `${step}: the complete lines (${showBytes(text.slice(3))} may still get its newline)`,
    );
    if (last !== null) {
      const got = await t.step(`${step}: finish()`, () => decoder.finish());
      t.expectEqual(got, last, `what finish() returned for ${showBytes(text.slice(3))}`, why);
      continue;
    }
    const error = await t.expectError(`${step}: finish()`, () => decoder.finish(), {
      name: "LineTooLongError",
      what: `${why}`,
      note: "finish() applies the limit to the last line too: the stream ended, no \\n will " +
        "come, and the bytes left are the line",
    });
    t.expectEqual(
      { lineNumber: error.lineNumber, maxLineBytes: error.maxLineBytes },
      { lineNumber: 2, maxLineBytes: max },
      "the LineTooLongError's lineNumber and maxLineBytes (from finish())",
    );
  }
});

suite.test("LineDecoder reports invalid UTF-8 with the line number and reads on", async (t) => {
  const { LineDecoder } = await load(t);
  const bytes = concatBytes([
    toBytes("ok\n"),
    Uint8Array.of(0xff, 0xfe, 0x41, 0x0a), // never valid in UTF-8
    toBytes("after\n"),
    Uint8Array.of(0xe4, 0xb8), // the first 2 of the 3 bytes of 世, then the stream ends
  ]);
  for (const split of ["whole", "bytes"] as SplitMode[]) {
    const step = `LineDecoder: push ${showBytes(bytes)} ${describeSplit(split)}`;
    const events = await t.step(step, () => {
      const decoder = new LineDecoder();
      const out: string[] = [];
      const attempt = (fn: () => string | null | undefined) => {
        try {
          return fn();
        } catch (error) {
          if (!(error instanceof Error) || error.name !== "InvalidUtf8Error") throw error;
          out.push(
            `InvalidUtf8Error on line ${(error as { lineNumber?: number }).lineNumber}`,
          );
          return "skip";
        }
      };
      const next = () => {
        while (true) {
          const line = attempt(() => decoder.nextLine());
          if (line !== "skip") return line ?? undefined;
        }
      };
      feedDecoder(splitBytes(bytes, split), (c) => decoder.push(c), next, out);
      const last = attempt(() => decoder.finish());
      if (typeof last === "string" && last !== "skip") out.push(last);
      return out;
    });
    t.expectEqual(
      events,
      ["ok", "InvalidUtf8Error on line 2", "after", "InvalidUtf8Error on line 4"],
      `${step}: lines and errors, in order`,
      'decode each complete line with new TextDecoder("utf-8", { fatal: true }) and turn its ' +
        "TypeError into an InvalidUtf8Error naming the line; the bad line is consumed, the next " +
        "one reads normally (a non-fatal decoder would hide the damage as U+FFFD)",
    );
  }

  // A byte order mark (EF BB BF, U+FEFF) is valid UTF-8 and part of the line: every byte is kept.
  const bom = [0xef, 0xbb, 0xbf];
  const showMark = (line: unknown) =>
    typeof line === "string" ? line.replaceAll("\uFEFF", "<U+FEFF>") : line;
  const marked = Uint8Array.of(...bom, 0x41, 0x0a, ...bom, 0x42, 0x0a, 0x43, ...bom, 0x0a);
  for (const split of ["whole", "bytes"] as SplitMode[]) {
    const step = `LineDecoder: push ${showBytes(marked)} ${describeSplit(split)}, then finish()`;
    const lines = await t.step(step, () => {
      const decoder = new LineDecoder();
      const out: string[] = [];
      feedDecoder(splitBytes(marked, split), (c) => decoder.push(c), () => decoder.nextLine(), out);
      const last = decoder.finish();
      if (last !== null) out.push(last);
      return out;
    });
    t.expectEqual(
      lines.map(showMark),
      ["\uFEFFA", "\uFEFFB", "C\uFEFF"].map(showMark),
      `${step}: the lines (<U+FEFF> is the byte order mark)`,
      "a line keeps every one of its bytes: a byte order mark (EF BB BF) at the start of a line " +
        "is the character U+FEFF of that line, not something to drop. A TextDecoder drops a " +
        "leading BOM unless it was made with ignoreBOM: true (the decoder the file gives you is)",
    );
  }
});

for (const split of SPLITS) {
  suite.test(
    `LineReader reads lines from a connection (sent ${describeSplit(split)})`,
    async (t) => {
      const { LineReader } = await load(t);
      const bytes = toBytes(LINES_TEXT);
      const readSizes = split === "whole" ? [undefined, 3] : [undefined];
      for (const readSize of readSizes) {
        const { probe, conn } = await connectionPair(t);
        const options = readSize
          ? `{ maxLineBytes: ${LINES_MAX}, readSize: ${readSize} }`
          : `{ maxLineBytes: ${LINES_MAX} }`;
        const lines = await readWhileSending(
          t,
          probe,
          bytes,
          split,
          `new LineReader(conn, ${options}).readLine() until null, while the grader sends ` +
            `${bytes.length} bytes ${describeSplit(split)} and then EOF`,
          () => readAllLines(new LineReader(conn, { maxLineBytes: LINES_MAX, readSize })),
        );
        t.expectEqual(
          lines,
          [...LINES, null],
          `the lines readLine() returned (then null, and null again)`,
          "the last line has no newline: return it at EOF, then null on every later call",
        );
        conn.close();
      }
    },
    { timeoutMs: 20_000 },
  );
}

suite.test("LineReader refuses an endless line without waiting for its end", async (t) => {
  const { LineReader } = await load(t);
  const max = 1000;
  const { probe, conn } = await connectionPair(t);
  const reader = new LineReader(conn, { maxLineBytes: max });
  const monster = concatBytes([toBytes("first\n"), new Uint8Array(64 * 1024).fill(0x78)]);
  // The grader keeps the connection open: no newline and no EOF will ever come.
  const first = await readWhileSending(
    t,
    probe,
    monster,
    "whole",
    `readLine() while the grader sends "first\\n" and 64 KiB of "x" with no newline`,
    () => reader.readLine(),
    { end: false },
  );
  t.expectEqual(first, "first", "the first line");
  const error = await t.expectError(
    `readLine() again (maxLineBytes ${max}; the connection stays open)`,
    () => reader.readLine(),
    {
      name: "LineTooLongError",
      what: `as soon as more than ${max} bytes of the line have arrived`,
      note:
        "the line will never end: a reader that waits for its newline buffers whatever the peer " +
        "sends. Refuse it once the unfinished line is over the limit",
    },
  );
  t.expectEqual(error.lineNumber, 2, "the LineTooLongError's lineNumber");
});

suite.test("LineReader returns lines already received before it reads again", async (t) => {
  const { LineReader } = await load(t);
  const source = new ScriptedReader(["one\ntwo\r\nthree\n"]);
  t.defer(() => source.end());
  const reader = new LineReader(source);
  const first = await t.step(
    'readLine() on a connection that delivers "one\\ntwo\\r\\nthree\\n" in one read and ' +
      "then stays open",
    () => reader.readLine(),
  );
  t.expectEqual(first, "one", "the first line readLine() returned");
  for (const line of ["two", "three"]) {
    const got = await nextOrStarved(
      t,
      `readLine() again (expecting "${line}")`,
      source,
      () => reader.readLine(),
    );
    t.check(got !== "starved", {
      step: `readLine() again (expecting "${line}")`,
      expected: `"${line}" at once: it arrived with the first line and waits in your decoder`,
      actual: `your readLine() called read() on the connection (read #${source.reads}), which ` +
        "waits for bytes the peer may never send: the line it already holds is stuck behind it",
      note: "ask the decoder for a complete line first; read from the connection only when it " +
        "has none (a peer that sent two requests in one write waits for the second answer)",
    });
    t.expectEqual(got, { value: line }, `the line readLine() returned (expecting "${line}")`);
  }
  const fourth = await nextOrStarved(
    t,
    "readLine() a fourth time (all three lines taken; the connection is still open)",
    source,
    () => reader.readLine(),
  );
  t.check(fourth === "starved", {
    step: "readLine() a fourth time, with no bytes left and no end of stream yet",
    expected: "it waits for more bytes (a read on the connection)",
    actual: `it returned ${
      JSON.stringify(fourth === "starved" ? "" : fourth.value)
    } without reading`,
    note: "null means the stream ended; an open connection with nothing buffered means: read",
  });
});

suite.test("lineStream splits conn.readable into lines (pipeThrough)", async (t) => {
  const { lineStream } = await load(t);
  const bytes = toBytes(LINES_TEXT);
  for (const split of SPLITS) {
    const { probe, conn } = await connectionPair(t);
    const lines = await readWhileSending(
      t,
      probe,
      bytes,
      split,
      `Array.fromAsync(conn.readable.pipeThrough(lineStream({ maxLineBytes: ${LINES_MAX} }))) ` +
        `while the grader sends ${bytes.length} bytes ${describeSplit(split)}, then EOF`,
      () => Array.fromAsync(conn.readable.pipeThrough(lineStream({ maxLineBytes: LINES_MAX }))),
    );
    t.expectEqual(
      lines,
      LINES,
      "the lines that came out of the stream",
      "flush() runs at the end of the input: the last line, without newline, comes out there",
    );
  }

  const ended = await t.step(
    'Array.fromAsync(ReadableStream.from(["a\\nb", "\\n"]).pipeThrough(lineStream())): the ' +
      "input ends with a newline",
    () =>
      Array.fromAsync(
        ReadableStream.from([toBytes("a\nb"), toBytes("\n")]).pipeThrough(lineStream()),
      ),
  );
  t.expectEqual(
    ended,
    ["a", "b"],
    "the lines of an input that ends with a newline",
    "finish() returns null when nothing is left: flush() enqueues the last line only if there is one",
  );
  await t.expectError(
    'Array.fromAsync(ReadableStream.from(["ok\\n", <ff fe>]).pipeThrough(lineStream())): the ' +
      "last line, without newline, is not UTF-8",
    () =>
      Array.fromAsync(
        ReadableStream.from([toBytes("ok\n"), Uint8Array.of(0xff, 0xfe)]).pipeThrough(lineStream()),
      ),
    {
      name: "InvalidUtf8Error",
      what: "from flush(): the last line is decoded there, with the same rules",
      note: "an error thrown in flush() errors the stream, like one thrown in transform()",
    },
  );

  const { probe, conn } = await connectionPair(t);
  const reader = conn.readable.pipeThrough(lineStream({ maxLineBytes: 16 })).getReader();
  t.defer(() => reader.cancel().catch(() => {}));
  await probe.send("ok\n" + "x".repeat(100));
  const first = await t.step(
    'read the first line after the grader sent "ok\\n" and 100 "x" (maxLineBytes 16)',
    () => reader.read(),
  );
  t.expectEqual(first, { done: false, value: "ok" }, "the first line");
  await t.expectError(
    "read again: the stream must fail (the grader keeps the connection open)",
    () => reader.read(),
    {
      name: "LineTooLongError",
      what: "that errors the stream",
      note: "throw the decoder's error from transform(): the stream errors and its reader sees it",
    },
  );
});

// ── part 3: frames ──────────────────────────────────────────────────────────

suite.test("encodeFrame writes a 4-byte big-endian length, then the payload", async (t) => {
  const { encodeFrame } = await load(t);
  const cases: [string, Uint8Array][] = [
    ['encodeFrame("hi")', toBytes("hi")],
    ["encodeFrame(empty payload)", new Uint8Array(0)],
    ["encodeFrame(300 bytes)", pattern(300, 31)],
    ["encodeFrame(70000 bytes)", pattern(70_000, 32)],
  ];
  for (const [step, payload] of cases) {
    const encoded = await t.step(step, () => encodeFrame(payload));
    t.check(encoded instanceof Uint8Array && equalBytes(encoded, frame(payload)), {
      step,
      expected: `${showBytes(frame(payload), 24)} (header ${showBytes(header(payload.length))})`,
      actual: encoded instanceof Uint8Array ? showBytes(encoded, 24) : String(encoded),
      note: `${payload.length} in 4 bytes, most significant first (network byte order): ` +
        `DataView's setUint32(0, n) is big-endian; setUint32(0, n, true) is little-endian`,
    });
  }
  const exact = await t.step(
    "encodeFrame(100 bytes, 100): exactly the limit",
    () => encodeFrame(pattern(100, 33), 100),
  );
  t.check(exact.length === 104, {
    step: "encodeFrame(100 bytes, 100)",
    expected: "a 104-byte frame: a payload of exactly maxFrameBytes is allowed",
    actual: `${exact.length} bytes`,
  });
  const error = await t.expectError(
    "encodeFrame(101 bytes, 100)",
    () => encodeFrame(pattern(101, 34), 100),
    { name: "FrameTooLargeError", what: "for a payload over maxFrameBytes" },
  );
  t.expectEqual(
    { length: error.length, maxFrameBytes: error.maxFrameBytes },
    { length: 101, maxFrameBytes: 100 },
    "the FrameTooLargeError's length and maxFrameBytes",
  );
});

suite.test("FrameDecoder splits bytes into frames, however they are cut", async (t) => {
  const { FrameDecoder } = await load(t);
  for (const split of DECODER_SPLITS) {
    const step = `FrameDecoder({ maxFrameBytes: ${FRAMES_MAX} }): push ${FRAMES.length} frames ` +
      `(${FRAMES_WIRE.length} bytes) ${
        describeSplit(split)
      }, take frames after each push, finish()`;
    const frames = await t.step(step, () => {
      const decoder = new FrameDecoder({ maxFrameBytes: FRAMES_MAX });
      const out: Uint8Array[] = [];
      feedDecoder(
        splitBytes(FRAMES_WIRE, split),
        (c) => decoder.push(c),
        () => decoder.nextFrame(),
        out,
      );
      decoder.finish();
      return out;
    });
    expectFrames(t, frames, FRAMES, step);
  }
});

suite.test("FrameDecoder refuses an oversized length header before the payload arrives", async (t) => {
  const { FrameDecoder } = await load(t);
  const max = 1000;
  const waiting = new FrameDecoder({ maxFrameBytes: max });
  const got = await t.step(
    `FrameDecoder({ maxFrameBytes: ${max} }): push the header of a ${max}-byte frame`,
    () => {
      waiting.push(header(max));
      return waiting.nextFrame();
    },
  );
  t.check(got === undefined, {
    step: `nextFrame() after the header of a ${max}-byte frame (exactly the limit)`,
    expected: "undefined: the frame is allowed, its payload has not arrived yet",
    actual: got instanceof Uint8Array ? `a frame of ${got.length} bytes` : String(got),
  });

  for (const length of [max + 1, 0xffff_ffff]) {
    const decoder = new FrameDecoder({ maxFrameBytes: max });
    const step = `FrameDecoder({ maxFrameBytes: ${max} }): push frame "ok", then a header ` +
      `announcing ${length} bytes, 1 byte at a time, calling nextFrame() after each`;
    const wire = concatBytes([frame("ok"), header(length)]);
    let pushed = 0;
    let thrown: unknown;
    const externalBefore = Deno.memoryUsage().external;
    const frames = await t.step(step, () => {
      const out: Uint8Array[] = [];
      for (const byte of wire) {
        pushed++;
        try {
          decoder.push(Uint8Array.of(byte));
          for (let f = decoder.nextFrame(); f !== undefined; f = decoder.nextFrame()) out.push(f);
        } catch (error) {
          if (!(error instanceof Error) || error.name !== "FrameTooLargeError") throw error;
          thrown = error;
          break;
        }
      }
      return out;
    });
    const grewMiB = (Deno.memoryUsage().external - externalBefore) / (1024 * 1024);
    expectFrames(t, frames, [toBytes("ok")], `${step}: the frames before the oversized one`);
    t.check(thrown !== undefined, {
      step,
      expected: `a FrameTooLargeError when the 4th header byte arrives (${length} > ${max})`,
      actual: "no error: your decoder trusts the header and waits for the payload",
      note: "a length header is 4 bytes anyone can send: check it against maxFrameBytes " +
        "before waiting for, buffering or allocating the payload",
    });
    t.check(grewMiB < 256, {
      step,
      expected: "no room made for the refused payload",
      actual: `memory for array buffers grew by ${Math.round(grewMiB)} MiB`,
      note: "check the length before new Uint8Array(length)",
    });
    const error = thrown as Error & Record<string, unknown>;
    t.expectEqual(
      { length: error.length, maxFrameBytes: error.maxFrameBytes },
      { length, maxFrameBytes: max },
      "the FrameTooLargeError's length and maxFrameBytes",
    );
  }
});

suite.test("FrameDecoder.finish reports a frame cut short by the end of the stream", async (t) => {
  const { FrameDecoder } = await load(t);
  const clean = new FrameDecoder();
  await t.step("finish() on a decoder that got nothing", () => clean.finish());
  const whole = new FrameDecoder();
  await t.step("finish() after whole frames only", () => {
    whole.push(FRAMES_WIRE);
    while (whole.nextFrame() !== undefined);
    whole.finish();
  });
  const cases: [string, Uint8Array, number, number][] = [
    ["2 bytes of a header", header(10).subarray(0, 2), 2, 4],
    [
      "a header announcing 10 bytes and 4 of them",
      concatBytes([header(10), toBytes("abcd")]),
      8,
      14,
    ],
    ["a header announcing 0 bytes... and only 3 of its 4 bytes", header(0).subarray(0, 3), 3, 4],
    ["a whole header announcing 10 bytes, and none of them", header(10), 4, 14],
  ];
  for (const [what, tail, received, expected] of cases) {
    const decoder = new FrameDecoder();
    const step = `push frame "ok" and ${what}, take the frames, then finish()`;
    const error = await t.expectError(step, () => {
      decoder.push(concatBytes([frame("ok"), tail]));
      while (decoder.nextFrame() !== undefined);
      decoder.finish();
    }, {
      name: "TruncatedFrameError",
      what: "from finish(): the stream ended inside a frame",
      note: "bytes left in the decoder at the end of the stream are a frame that will never be " +
        "complete; ending quietly would pass a broken message off as a clean end",
    });
    t.expectEqual(
      { received: error.received, expected: error.expected },
      { received, expected },
      `${step}: the TruncatedFrameError's received and expected (whole-frame bytes, header included)`,
    );
  }
});

for (const split of SPLITS) {
  suite.test(
    `FrameReader reads frames from a connection (sent ${describeSplit(split)})`,
    async (t) => {
      const { FrameReader } = await load(t);
      const readSizes = split === "whole" ? [undefined, 3] : [undefined];
      // 1 byte per write is slow: send the small frames only.
      const frames = split === "bytes" ? FRAMES.slice(0, 3) : FRAMES;
      const wire = concatBytes(frames.map(frame));
      for (const readSize of readSizes) {
        const { probe, conn } = await connectionPair(t);
        const options = readSize
          ? `{ maxFrameBytes: ${FRAMES_MAX}, readSize: ${readSize} }`
          : `{ maxFrameBytes: ${FRAMES_MAX} }`;
        const step = `new FrameReader(conn, ${options}).readFrame() until null, while the grader ` +
          `sends ${frames.length} frames (${wire.length} bytes) ${describeSplit(split)}, then EOF`;
        const reader = new FrameReader(conn, { maxFrameBytes: FRAMES_MAX, readSize });
        const got = await readWhileSending(
          t,
          probe,
          wire,
          split,
          step,
          () => readAllFrames(reader),
        );
        expectFrames(t, got, frames, step);
        const after = await t.step("readFrame() once more after the end", () => reader.readFrame());
        t.expectEqual(after, null, "readFrame() after the end of the stream");
        conn.close();
      }
    },
    { timeoutMs: 20_000 },
  );
}

suite.test("FrameReader returns frames already received before it reads again", async (t) => {
  const { FrameReader } = await load(t);
  const frames = [toBytes("one"), new Uint8Array(0), toBytes("three")];
  const source = new ScriptedReader([concatBytes(frames.map(frame))]);
  t.defer(() => source.end());
  const reader = new FrameReader(source);
  const first = await t.step(
    "readFrame() on a connection that delivers 3 frames in one read and then stays open",
    () => reader.readFrame(),
  );
  expectFrames(t, first ? [first] : [], frames.slice(0, 1), "the first frame");
  for (const [i, expected] of frames.entries()) {
    if (i === 0) continue;
    const step = `readFrame() again (expecting frame ${i + 1}: ${showBytes(expected)})`;
    const got = await nextOrStarved(t, step, source, () => reader.readFrame());
    t.check(got !== "starved", {
      step,
      expected: "the frame at once: it arrived with the first one and waits in your decoder",
      actual: `your readFrame() called read() on the connection (read #${source.reads}), which ` +
        "waits for bytes the peer may never send",
      note: "ask the decoder for a complete frame first; read only when it has none",
    });
    const value = got === "starved" ? null : got.value;
    expectFrames(t, value ? [value] : [], [expected], step);
  }
  const fourth = await nextOrStarved(
    t,
    "readFrame() a fourth time (no bytes left; the connection is still open)",
    source,
    () => reader.readFrame(),
  );
  t.check(fourth === "starved", {
    step: "readFrame() a fourth time, with no bytes left and no end of stream yet",
    expected: "it waits for more bytes (a read on the connection)",
    actual: `it returned ${fourth === "starved" ? "" : String(fourth.value)} without reading`,
    note: "null means a clean end of stream; an open connection with nothing buffered means: read",
  });
});

/** readFrame() once, where the grader sent the frame "ok" first. */
async function expectOkFrame(t: Grader, reader: Lesson.FrameReader): Promise<void> {
  const first = await t.step(
    'readFrame() (the grader sent frame "ok" first)',
    () => reader.readFrame(),
  );
  expectFrames(t, first ? [first] : [], [toBytes("ok")], "the first frame");
}

suite.test("FrameReader refuses an oversized header at once and reports a truncated frame", async (t) => {
  const { FrameReader } = await load(t);
  {
    const { probe, conn } = await connectionPair(t);
    const reader = new FrameReader(conn, { maxFrameBytes: 65536 });
    await probe.send(concatBytes([frame("ok"), header(0xffff_ffff), toBytes("and a bit")]));
    await expectOkFrame(t, reader);
    await t.expectError(
      "readFrame() after a header announcing 4294967295 bytes (maxFrameBytes 65536; " +
        "the connection stays open)",
      () => reader.readFrame(),
      {
        name: "FrameTooLargeError",
        what: "as soon as the header arrives, without waiting for the payload",
        note: "trusting the header means waiting for (and buffering) 4 GiB a peer may never send",
      },
    );
  }
  {
    const { probe, conn } = await connectionPair(t);
    const reader = new FrameReader(conn);
    await probe.send(concatBytes([frame("ok"), header(10), toBytes("abc")]));
    await probe.closeWrite();
    await expectOkFrame(t, reader);
    const error = await t.expectError(
      'readFrame() after a header announcing 10 bytes, then "abc", then EOF',
      () => reader.readFrame(),
      {
        name: "TruncatedFrameError",
        what: "the stream ended 3 bytes into a 10-byte payload",
        note: "null means a clean end between frames; an end inside a frame is an error",
      },
    );
    t.expectEqual(
      { received: error.received, expected: error.expected },
      { received: 7, expected: 14 },
      "the TruncatedFrameError's received and expected",
    );
  }
});

suite.test("frameStream splits conn.readable into frames (pipeThrough)", async (t) => {
  const { frameStream } = await load(t);
  for (const split of SPLITS) {
    const frames = split === "bytes" ? FRAMES.slice(0, 3) : FRAMES;
    const wire = concatBytes(frames.map(frame));
    const { probe, conn } = await connectionPair(t);
    const step = `Array.fromAsync(conn.readable.pipeThrough(frameStream({ maxFrameBytes: ` +
      `${FRAMES_MAX} }))) while the grader sends ${frames.length} frames ${describeSplit(split)}`;
    const got = await readWhileSending(
      t,
      probe,
      wire,
      split,
      step,
      () => Array.fromAsync(conn.readable.pipeThrough(frameStream({ maxFrameBytes: FRAMES_MAX }))),
    );
    expectFrames(t, got, frames, step);
  }
  {
    const { probe, conn } = await connectionPair(t);
    await probe.send(concatBytes([frame("ok"), header(10), toBytes("abc")]));
    await probe.closeWrite();
    await t.expectError(
      'Array.fromAsync(conn.readable.pipeThrough(frameStream())) after the grader sent frame "ok", ' +
        'a header announcing 10 bytes, "abc", then EOF',
      () => Array.fromAsync(conn.readable.pipeThrough(frameStream())),
      {
        name: "TruncatedFrameError",
        what: "that errors the stream, from flush()",
        note:
          "flush() runs when the input ends: bytes still in the decoder there are a truncated frame",
      },
    );
  }
  {
    const { probe, conn } = await connectionPair(t);
    await probe.send(header(2000));
    await t.expectError(
      "Array.fromAsync(conn.readable.pipeThrough(frameStream({ maxFrameBytes: 1000 }))) after " +
        "a header announcing 2000 bytes (the connection stays open)",
      () => Array.fromAsync(conn.readable.pipeThrough(frameStream({ maxFrameBytes: 1000 }))),
      { name: "FrameTooLargeError", what: "as soon as the header arrives" },
    );
  }
});

// ── part 4: a file to a socket ──────────────────────────────────────────────

suite.test(
  "sendFile streams a file of a few MiB intact and leaves the connection open",
  async (t) => {
    const { sendFile } = await load(t);
    const dir = await t.tempDir();
    const path = `${dir}/payload.bin`;
    // Random bytes (so a lost or repeated chunk shows), and not a multiple of any chunk size.
    const content = new Uint8Array(3 * 1024 * 1024 + 12345);
    for (let at = 0; at < content.length; at += 65536) {
      crypto.getRandomValues(content.subarray(at, at + 65536));
    }
    await Deno.writeFile(path, content);
    const { probe, conn } = await connectionPair(t);
    const sent = await t.step(
      `sendFile(path of a ${content.length}-byte file, conn.writable)`,
      () => sendFile(path, conn.writable),
      { timeoutMs: 15_000 },
    );
    t.expectEqual(sent, content.length, "the byte count sendFile returned");
    // The caller may send more on the same connection, with sendFile again.
    const second = toBytes("a second file on the same connection\n");
    await Deno.writeFile(`${dir}/second.txt`, second);
    const sentSecond = await t.step(
      `sendFile(path of a ${second.length}-byte file, conn.writable) again, on the same connection`,
      () => sendFile(`${dir}/second.txt`, conn.writable),
      {
        note: "the first sendFile must leave conn.writable as it found it: open (pipeTo() " +
          "closes its destination when the source ends unless you pass { preventClose: true }) " +
          "and unlocked (release a writer you took with releaseLock(), or let pipeTo() release it)",
      },
    );
    t.expectEqual(sentSecond, second.length, "the byte count the second sendFile returned");
    const trailer = toBytes("\n-- end of file --\n");
    try {
      await conn.write(trailer);
      conn.close();
    } catch (error) {
      t.fail({
        step: "the grader writes a trailer on the connection after sendFile returned",
        expected: "the connection still open",
        actual: `the write failed: ${describeError(error)}`,
        note: "pipeTo() closes its destination when the source ends, and closing conn.writable " +
          "closes the socket: pass { preventClose: true }, the caller decides when to close",
      });
    }
    const received = await probe.readToEnd({
      step: "read everything until the connection closes",
      timeoutMs: 15_000,
    });
    const expected = concatBytes([content, second, trailer]);
    if (!equalBytes(received, expected)) {
      t.fail({
        step: `compare the ${received.length} bytes received with the two files and the trailer`,
        comparison: showDifference(expected, received),
        note: "every byte of each file, in order, exactly once",
      });
    }
  },
  { timeoutMs: 30_000 },
);

suite.test(
  "sendFile sends in chunks, releases the writable, and closes the file when a write fails",
  async (t) => {
    const { sendFile } = await load(t);
    const dir = await t.tempDir();
    const path = `${dir}/payload.bin`;
    const content = pattern(3 * 1024 * 1024 + 4321, 5);
    await Deno.writeFile(path, content);

    // A writable that records each chunk it is given, as a socket's would receive them.
    const chunks: Uint8Array[] = [];
    const recorder = new WritableStream<Uint8Array>({
      write(chunk) {
        chunks.push(chunk.slice());
      },
    });
    const sent = await t.step(
      `sendFile(path of a ${content.length}-byte file, a WritableStream that records each write)`,
      () => sendFile(path, recorder),
      { timeoutMs: 15_000 },
    );
    t.expectEqual(sent, content.length, "the byte count sendFile returned");
    const largest = Math.max(0, ...chunks.map((chunk) => chunk.length));
    t.check(chunks.length > 1 && largest <= MAX_SEND_CHUNK, {
      step: `the writes sendFile made for a ${content.length}-byte file`,
      expected: `several chunks of at most ${MAX_SEND_CHUNK} bytes (1 MiB): the file streamed ` +
        "through, never whole in memory",
      actual: `${chunks.length} chunk(s), the largest ${largest} bytes`,
      note: "read the file a chunk at a time (file.readable gives 64 KiB chunks, or a loop of " +
        "file.read(buffer)) and write each chunk as it comes; reading the whole file first costs " +
        "memory in proportion to the file, and nothing goes out until all of it is read",
    });
    const received = concatBytes(chunks);
    if (!equalBytes(received, content)) {
      t.fail({
        step: `compare the ${received.length} bytes written with the file`,
        comparison: showDifference(content, received),
        note: "every byte of the file, in order, exactly once",
      });
    }
    t.check(!recorder.locked, {
      step: "after sendFile(path, writable) returned",
      expected: "the writable unlocked, ready for the next sender",
      actual: "the writable is still locked: your sendFile kept a writer (or a pipe) on it",
      note: "a writer from writable.getWriter() holds the stream until writer.releaseLock(); " +
        "pipeTo() releases it by itself when it ends",
    });
    // Closed already when sendFile closed it (the check above on conn.writable reports that).
    await recorder.close().catch(() => {});

    // A connection that fails after its first chunk: the error comes out, the file is closed.
    let writes = 0;
    const failing = new WritableStream<Uint8Array>({
      write() {
        if (++writes > 1) throw new Deno.errors.ConnectionReset("the grader reset the connection");
      },
    });
    await t.expectError(
      `sendFile(path of a ${content.length}-byte file, a writable whose second write fails ` +
        "with ConnectionReset)",
      () => sendFile(path, failing),
      {
        what: "the write's error passes through sendFile",
        note: "sendFile closes the file whatever happens: a failed write too (the resource " +
          "check at the end of this check lists a file left open)",
      },
    );
  },
  { timeoutMs: 30_000 },
);
