/**
 * Grading suite of lesson 06 — a multi-client chat server and its client.
 * Run it with `deno task lesson 6`.
 *
 * First the parts on their own, with grader-made stand-ins: your Outbox
 * writing to a writer the grader holds back, your ChatRoom with members that
 * record what they are sent, your handleClient on one connection. Then the
 * whole server over real sockets (several clients, byte-at-a-time and
 * coalesced writes, clients that vanish or stop reading), your client
 * against the grader's server and against yours, and a load check.
 */
import {
  captureLogs,
  concatBytes,
  expectedBackoff,
  freePort,
  gateListen,
  GradeFailure,
  type Grader,
  heapAfterGc,
  judgeBackoffEpisode,
  lessonSuite,
  type ListenerGate,
  type Probe,
  recordPauses,
  ResettableConn,
  showBytes,
  STEP_MS,
  TypedInput,
  waitFor,
  whileRunning,
} from "../workbook/harness/mod.ts";
import net from "node:net";
import type * as ServerLesson from "../solutions/06-chat/chat_server.ts";
import type * as ClientLesson from "../solutions/06-chat/chat_client.ts";

const suite = lessonSuite("06");
const loadServer = (t: Grader) => t.load<typeof ServerLesson>("chat_server.ts");
const loadClient = (t: Grader) => t.load<typeof ClientLesson>("chat_client.ts");
const decoder = new TextDecoder();

/** The lines the server must send (docs/06-chat.md, "The protocol"). */
const say = {
  welcome: (name: string) => `* welcome ${name}\n`,
  joined: (name: string) => `* ${name} joined\n`,
  youAreNow: (name: string) => `* you are now ${name}\n`,
  renamed: (from: string, to: string) => `* ${from} is now ${to}\n`,
  message: (name: string, text: string) => `${name}> ${text}\n`,
  left: (name: string) => `* ${name} left\n`,
  dropped: (name: string) => `* ${name} dropped (too slow)\n`,
  bye: "* bye\n",
  joinFirst: "! join first: /nick NAME\n",
  badName: "! bad name: use 1 to 16 letters, digits, _ or -\n",
  nameTaken: (name: string) => `! name taken: ${name}\n`,
  unknownCommand: (command: string) => `! unknown command ${command} (try /nick NAME or /quit)\n`,
  invalidUtf8: "! invalid UTF-8, line ignored\n",
  tooLong: (max: number) => `! line too long (max ${max} bytes), bye\n`,
};

/** Same lines without the newline: what a room member is sent, what a client prints. */
const bare = (line: string) => line.replace(/\n$/, "");

// ── small tools ─────────────────────────────────────────────────────────────

/**
 * Starts a long-running call of learner code (a client, a handler) as a step
 * that is awaited later. Waits one turn so a starter's TodoError or a crash
 * fails the check at once, under its own step.
 */
async function running<T>(
  t: Grader,
  step: string,
  fn: () => Promise<T>,
  timeoutMs: number,
): Promise<{ done: Promise<T> }> {
  const task = t.step(step, fn, { timeoutMs });
  task.catch(() => {}); // awaited by the check later
  await waitFor(task, { timeoutMs: 0 });
  return { done: task };
}

/** `wait`, unless `task` (learner code running meanwhile) fails or returns first. */
function whileStillRunning<T>(task: Promise<unknown>, what: string, wait: Promise<T>): Promise<T> {
  const ended = task.then(() => {
    throw new GradeFailure({
      kind: "mismatch",
      step: what,
      expected: "your code to keep running meanwhile",
      actual: "it returned",
    });
  });
  return whileRunning(ended, () => wait);
}

// ── the server over real sockets ───────────────────────────────────────────

/** Clients that come and go in each round of the memory check, after a warm-up of CLIENT_WARM_UP. */
const CLIENT_ROUNDS = 700;
const CLIENT_WARM_UP = 300;
/** Heap growth per client the memory check allows. */
const BYTES_PER_CLIENT = 40;

type ChatServer = ServerLesson.ChatServer;

async function startServer(
  t: Grader,
  options: ServerLesson.ChatServerOptions = {},
): Promise<ChatServer> {
  const { startChatServer } = await loadServer(t);
  const server = await t.step(
    `startChatServer(${JSON.stringify({ hostname: "127.0.0.1", port: 0, ...options })})`,
    () => startChatServer({ hostname: "127.0.0.1", port: 0, ...options }),
  );
  t.defer(() => server.close());
  return server;
}

/**
 * Connects `name`, joins with `/nick name` (written as `split` says), waits
 * for the welcome and for every one of `others` to be told.
 */
async function join(
  t: Grader,
  server: ChatServer,
  name: string,
  others: Probe[],
  split: "whole" | "bytes" = "whole",
): Promise<Probe> {
  const probe = await t.connect(server.addr, name);
  await probe.send(`/nick ${name}\n`, { split });
  await probe.expect(say.welcome(name), {
    step: `${name} sends "/nick ${name}" and is welcomed`,
    note: "the first `/nick NAME` joins the chat: reply `* welcome NAME` to that client only",
  });
  for (const other of others) {
    await other.expect(say.joined(name), {
      step: `${other.label} is told that ${name} joined`,
      note: "everyone already in the room is told `* NAME joined`; the newcomer is not",
    });
  }
  return probe;
}

/** `from` sends `text` (as `split` says); each of `to` must receive `from> text`. */
async function chat(
  from: Probe,
  text: string,
  to: Probe[],
  split: "whole" | "bytes" = "whole",
): Promise<void> {
  await from.send(`${text}\n`, { split });
  for (const other of to) {
    await other.expect(say.message(from.label, text), {
      step: `${other.label} receives ${from.label}'s ${JSON.stringify(text)}`,
      note: "each message goes to every other joined client as `name> text`, in the order sent; " +
        "never back to its sender",
    });
  }
}

// ── stand-ins for the parts on their own ────────────────────────────────────

/** A writer the grader holds back: writes wait until released, and take 5 bytes at most. */
class HeldWriter {
  readonly chunks: Uint8Array[] = [];
  /** Most bytes one write takes (5 unless told otherwise). */
  perWrite = 5;
  #held = true;
  #waiting: (() => void)[] = [];
  failWith: Error | undefined;
  pending = 0;

  get text(): string {
    return decoder.decode(concatBytes(this.chunks));
  }

  release(): void {
    this.#held = false;
    for (const wake of this.#waiting.splice(0)) wake();
  }

  async write(data: Uint8Array): Promise<number> {
    this.pending++;
    try {
      while (this.#held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
      if (this.failWith) throw this.failWith;
      const n = Math.min(data.length, this.perWrite);
      this.chunks.push(data.slice(0, n));
      return n;
    } finally {
      this.pending--;
    }
  }
}

/** A room member that records what it is sent; `full` makes its queue refuse. */
class Recorder implements ServerLesson.Member {
  name = "";
  readonly got: string[] = [];
  full = false;
  hangUps = 0;
  constructor(readonly label: string) {}

  send(line: string): boolean {
    if (this.full) return false;
    this.got.push(line);
    return true;
  }

  hangUp(): void {
    this.hangUps++;
  }

  /** What it got since the last call. */
  take(): string[] {
    return this.got.splice(0);
  }
}

// ── Outbox ──────────────────────────────────────────────────────────────────

/** Your Outbox on a {@linkcode HeldWriter} that takes `perWrite` bytes a write (default 5). */
async function heldOutbox(t: Grader, maxQueuedBytes: number, perWrite?: number) {
  const { Outbox } = await loadServer(t);
  const writer = new HeldWriter();
  if (perWrite !== undefined) writer.perWrite = perWrite;
  const outbox = await t.step(
    `new Outbox(writer, ${maxQueuedBytes})`,
    () => new Outbox(writer, maxQueuedBytes),
  );
  t.defer(() => {
    outbox.abort();
    writer.release();
  });
  return { Outbox, writer, outbox };
}

suite.test("Outbox queues without waiting, writes every line in order, refuses past its limit", async (t) => {
  const { writer, outbox } = await heldOutbox(t, 20);
  const first = await t.step(
    'outbox.offer("one") while the writer is held back',
    () => outbox.offer("one"),
  );
  t.check(first === true, {
    step: 'outbox.offer("one")',
    expected: "true (the line is queued, at once)",
    actual: String(first),
    note: "offer() must never wait for the socket: return a boolean, not a promise",
  });
  await t.eventually('the writer loop starts writing "one\\n"', () => writer.pending > 0, {
    expected: "your writer loop to call writer.write() after offer() woke it",
    actual: () => "no write was started",
    note: "offer() queues the line and wakes the loop; the loop takes the queue and writes it",
  });
  const accepted = await t.step('outbox.offer("two"), offer("six")', () => [
    outbox.offer("two"),
    outbox.offer("six"),
  ]);
  t.expectEqual(accepted, [true, true], 'offer("two") and offer("six") (8 bytes queued of 20)');
  const refused = await t.step(
    'outbox.offer("fourteen bytes") with 8 of 20 bytes queued',
    () => outbox.offer("fourteen bytes"),
  );
  t.check(refused === false, {
    step:
      'outbox.offer("fourteen bytes") (15 bytes with its \\n) with "two\\n" and "six\\n" waiting',
    expected: "false: 8 + 15 bytes would take the queue past maxQueuedBytes = 20",
    actual: String(refused),
    note: "a bounded queue refuses a line that does not fit; the room then drops that client",
  });
  const exact = await t.step(
    'outbox.offer("exactly 12!") (12 bytes with its \\n) with 8 of 20 bytes queued',
    () => outbox.offer("exactly 12!"),
  );
  t.check(exact === true, {
    step: 'outbox.offer("exactly 12!") with "two\\n" and "six\\n" waiting',
    expected: "true: 8 + 12 bytes fill the queue to exactly maxQueuedBytes = 20, which is allowed",
    actual: String(exact),
    note: "refuse only a line that would take the queue PAST maxQueuedBytes (>, not >=)",
  });
  const full = await t.step(
    'outbox.offer("") (1 byte) with 20 of 20 bytes queued',
    () => outbox.offer(""),
  );
  t.check(full === false, {
    step: 'outbox.offer("") with the queue full',
    expected: "false: 20 + 1 bytes are past maxQueuedBytes = 20",
    actual: String(full),
  });
  writer.release();
  const all = "one\ntwo\nsix\nexactly 12!\n";
  await t.eventually("the writer catches up", () => writer.text === all, {
    expected: 'the writer to receive exactly "one\\ntwo\\nsix\\nexactly 12!\\n"',
    actual: () => `it received ${showBytes(writer.text)}`,
    note: "write() may take only part of the bytes (this one takes 5 at most): loop until " +
      "all are written, and add a \\n to each line; the refused line is not written",
  });
  t.expectEqual(outbox.queuedBytes, 0, "outbox.queuedBytes after everything was written");
  await t.step("outbox.end() resolves once the queue is written", () => outbox.end());
  const late = "late, and longer than the whole queue";
  const afterEnd = await t.step(
    `outbox.offer(${JSON.stringify(late)}) after end()`,
    () => outbox.offer(late),
  );
  t.check(afterEnd === true && !writer.text.includes("late") && outbox.queuedBytes === 0, {
    step: `outbox.offer(${JSON.stringify(late)}) after end()`,
    expected: "true, nothing queued and nothing written (an ended outbox takes no more lines, " +
      "and there is nobody to drop)",
    actual: `${afterEnd}; queuedBytes ${outbox.queuedBytes}; the writer received ` +
      showBytes(writer.text),
    note: "once the outbox is ending or stopped, offer() returns true at once, queuing nothing",
  });
});

suite.test("Outbox counts bytes, not characters, and writes what waits in one batch", async (t) => {
  const { writer, outbox } = await heldOutbox(t, 20, 1 << 20);
  await t.step('outbox.offer("first") while the writer is held back', () => outbox.offer("first"));
  await t.eventually('the writer loop starts writing "first\\n"', () => writer.pending > 0, {
    expected: "your writer loop to call writer.write()",
    actual: () => "no write was started",
  });
  const wide = "ééééé"; // 5 characters, 10 bytes; 11 with the newline
  const first = await t.step(
    `outbox.offer("${wide}") (11 bytes with its \\n)`,
    () => outbox.offer(wide),
  );
  t.expectEqual(
    { offered: first, queuedBytes: outbox.queuedBytes },
    { offered: true, queuedBytes: 11 },
    `outbox.offer("${wide}") and queuedBytes after it`,
    "é is 2 bytes in UTF-8: the queue counts the bytes it will write, newline included",
  );
  const wider = "世界世"; // 3 characters, 9 bytes; 10 with the newline
  const second = await t.step(
    `outbox.offer("${wider}") (10 bytes with its \\n) with 11 of 20 bytes queued`,
    () => outbox.offer(wider),
  );
  t.check(second === false, {
    step: `outbox.offer("${wider}") with 11 of 20 bytes queued`,
    expected: "false: 11 + 10 bytes are past maxQueuedBytes = 20 (as characters they would be 10)",
    actual: String(second),
    note: "maxQueuedBytes counts bytes: compare the length of the encoded line " +
      '(new TextEncoder().encode(line + "\\n").length), not line.length',
  });
  await t.step('outbox.offer("x"), offer("y")', () => [outbox.offer("x"), outbox.offer("y")]);
  writer.release();
  const all = `first\n${wide}\nx\ny\n`;
  await t.eventually("the writer catches up", () => writer.text === all, {
    expected: `the writer to receive exactly ${showBytes(all)}`,
    actual: () => `it received ${showBytes(writer.text)}`,
  });
  t.expectEqual(
    writer.chunks.map((c) => decoder.decode(c)),
    ["first\n", `${wide}\nx\ny\n`],
    "the writes the writer loop made (a writer that takes every byte it is given)",
    "lines queued while a write is under way go out together: take the whole queue and write " +
      "it with one writeAll, one system call for many lines",
  );
});

suite.test("Outbox: abort() throws the queue away; a failed write stops it quietly", async (t) => {
  const { Outbox, writer, outbox } = await heldOutbox(t, 1000);
  await t.step('outbox.offer("first")', () => outbox.offer("first"));
  await t.eventually('the writer loop starts writing "first\\n"', () => writer.pending > 0, {
    expected: "a write to start",
    actual: () => "none started",
  });
  await t.step('offer("second"), offer("third"), then abort()', () => {
    outbox.offer("second");
    outbox.offer("third");
    outbox.abort();
  });
  writer.release();
  await t.step("outbox.done settles after abort()", () => outbox.done);
  t.expectEqual(
    writer.text,
    "first\n",
    "what reached the writer",
    "abort() drops what is queued: only the write already under way finishes",
  );
  const afterAbort = await t.step(
    'outbox.offer("more than twenty bytes, easily") after abort()',
    () => outbox.offer("more than twenty bytes, easily"),
  );
  t.expectEqual(
    { offered: afterAbort, queuedBytes: outbox.queuedBytes },
    { offered: true, queuedBytes: 0 },
    "offer() after abort(), and queuedBytes",
    "a stopped outbox queues nothing and returns true (there is nobody left to drop)",
  );

  const broken = new HeldWriter();
  broken.failWith = new Deno.errors.ConnectionReset("the grader's writer fails on purpose");
  broken.release();
  const failing = await t.step(
    "new Outbox(a writer whose writes fail)",
    () => new Outbox(broken, 1000),
  );
  await t.step('offer("anyone there?") to it', () => failing.offer("anyone there?"));
  await t.step(
    "outbox.done settles (resolves, not rejects) after the write failed",
    () => failing.done,
  );
  const afterFailure = await t.step(
    'offer("still there?") after the failed write',
    () => failing.offer("still there?"),
  );
  t.expectEqual(
    { offered: afterFailure, queuedBytes: failing.queuedBytes },
    { offered: true, queuedBytes: 0 },
    "offer() after the write failed, and queuedBytes",
    "a failed write stops the outbox (as abort() does): later lines are not queued for a " +
      "client that is gone",
  );
});

// ── ChatRoom ────────────────────────────────────────────────────────────────

suite.test("ChatRoom: join, messages, rename and leave reach the right members", async (t) => {
  const { ChatRoom } = await loadServer(t);
  const room = new ChatRoom();
  const [a, b, c] = [new Recorder("a"), new Recorder("b"), new Recorder("c")];
  const expectGot = (step: string, expected: Record<string, string[]>, note?: string) => {
    const actual = Object.fromEntries([a, b, c].map((m) => [m.label, m.take()]));
    t.expectEqual(actual, expected, `what each member was sent by ${step}`, note);
  };
  await t.step('room.join(a, "alice")', () => room.join(a, "alice"));
  expectGot(
    'room.join(a, "alice")',
    { a: [bare(say.welcome("alice"))], b: [], c: [] },
    "the newcomer gets `* welcome NAME` and nothing else: `* NAME joined` is broadcast to the " +
      "others, with the newcomer as `except` (broadcast never sends back to `except`)",
  );
  await t.step('room.join(b, "bob"), room.join(c, "carol")', () => {
    room.join(b, "bob");
    room.join(c, "carol");
  });
  expectGot(
    'room.join(b, "bob") then room.join(c, "carol")',
    {
      a: [bare(say.joined("bob")), bare(say.joined("carol"))],
      b: [bare(say.welcome("bob")), bare(say.joined("carol"))],
      c: [bare(say.welcome("carol"))],
    },
    "the newcomer gets `* welcome NAME`, everyone already in gets `* NAME joined`",
  );
  t.expectEqual(room.names, ["alice", "bob", "carol"], "room.names after three joins");
  await t.step('room.broadcast("alice> hi", a)', () => room.broadcast("alice> hi", a));
  expectGot(
    'room.broadcast("alice> hi", a)',
    { a: [], b: ["alice> hi"], c: ["alice> hi"] },
    "broadcast(line, except) sends to every member but `except` (the sender)",
  );
  await t.step('room.rename(b, "robert")', () => room.rename(b, "robert"));
  expectGot('room.rename(b, "robert")', {
    a: [bare(say.renamed("bob", "robert"))],
    b: [bare(say.youAreNow("robert"))],
    c: [bare(say.renamed("bob", "robert"))],
  });
  const left = await t.step("room.leave(c)", () => room.leave(c));
  t.expectEqual(left, true, "room.leave(c) returns");
  expectGot("room.leave(c)", { a: [bare(say.left("carol"))], b: [bare(say.left("carol"))], c: [] });
  const again = await t.step("room.leave(c) a second time", () => room.leave(c));
  t.expectEqual(again, false, "room.leave(c) for a member no longer in the room returns");
  expectGot("the second room.leave(c)", { a: [], b: [], c: [] }, "nobody is told twice");
  t.expectEqual(room.names, ["alice", "robert"], "room.names after the rename and the leave");
});

suite.test("ChatRoom.broadcast drops a full member after its loop, and skips nobody", async (t) => {
  const { ChatRoom } = await loadServer(t);
  const room = new ChatRoom();
  const members = ["alice", "slow", "bob", "carol"].map((name) => new Recorder(name));
  const [alice, slow, bob, carol] = members;
  await t.step("join alice, slow, bob and carol, in that order", () => {
    for (const member of members) room.join(member, member.label);
  });
  for (const member of members) member.take();
  slow.full = true;
  await t.step(
    'room.broadcast("alice> x", alice) while slow\'s queue is full',
    () => room.broadcast("alice> x", alice),
  );
  const expected = ["alice> x", bare(say.dropped("slow"))];
  t.expectEqual(
    bob.take(),
    expected,
    "what bob was sent, in order (bob joined right after slow)",
    "bob must get alice's line, then the notice that slow was dropped. Removing slow from the " +
      "registry while a for…of loop walks it makes the loop skip the next member (bob); dropping " +
      "slow inside the loop, even over a copy, sends the notice to the members after slow before " +
      "the line itself. Walk a copy ([...members]), remember the full members, and drop them " +
      "after the loop: then every member gets the line first",
  );
  t.expectEqual(carol.take(), expected, "what carol was sent, in order");
  t.expectEqual(alice.take(), [bare(say.dropped("slow"))], "what alice (the sender) was sent");
  t.expectEqual(slow.take(), [], "what slow was sent", "a full queue takes nothing");
  t.expectEqual(slow.hangUps, 1, "slow.hangUp() calls", "a dropped member is hung up on, once");
  t.expectEqual(room.names, ["alice", "bob", "carol"], "room.names after the drop");
  await t.step("room.drop(slow) again, then room.leave(slow)", () => {
    room.drop(slow);
    room.leave(slow);
  });
  t.expectEqual(
    [alice, bob, carol].map((m) => m.take()),
    [[], [], []],
    "what the others were sent after dropping or removing slow again",
    "a member that is not in the room any more is not announced again",
  );
  t.expectEqual(slow.hangUps, 1, "slow.hangUp() calls after the second drop");
});

// ── handleClient on one connection ──────────────────────────────────────────

const HANDLE_CALL = "handleClient(room, conn, { maxLineBytes: 100, maxQueuedBytes: 10000 })";

/**
 * A room with one member, zed (what it was sent so far taken), and
 * `serveOne(label)`: connects a grader client `label` and runs your
 * handleClient on the accepted end, as a step awaited later.
 */
async function roomWithZed(t: Grader) {
  const { ChatRoom, handleClient } = await loadServer(t);
  const room = new ChatRoom();
  const zed = new Recorder("zed");
  room.join(zed, "zed");
  zed.take();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const serveOne = async (label: string, options: { resettable?: boolean } = {}) => {
    const accepted = listener.accept();
    const client = await t.connect(listener.addr, label, options);
    const conn = await accepted;
    const { done: handling } = await running(
      t,
      HANDLE_CALL,
      () => handleClient(room, conn, { maxLineBytes: 100, maxQueuedBytes: 10000 }),
      5000,
    );
    t.defer(() => {
      try {
        conn.close();
      } catch { /* closed by handleClient */ }
      return handling.catch(() => {});
    });
    return { client, handling };
  };
  return { room, zed, serveOne };
}

suite.test("handleClient serves one connection: join, talk, errors, /quit", async (t) => {
  const { room, zed, serveOne } = await roomWithZed(t);
  const { client: alice, handling } = await serveOne("alice");
  const expectReply = (line: string, step: string, note?: string) =>
    alice.expect(line, { step, note: note ?? "replies go to this client only" });
  await alice.send("hello?\n");
  await expectReply(
    say.joinFirst,
    'alice says "hello?" before joining',
    "text before the first /nick is refused",
  );
  await alice.send("/nick alice\n");
  await expectReply(say.welcome("alice"), "alice sends /nick alice");
  await alice.send("\n\r\nhi zed\n/dance\n");
  await expectReply(
    say.unknownCommand("/dance"),
    'alice sends an empty line, an empty "\\r\\n" line, "hi zed" and "/dance" in one write',
  );
  await t.eventually("zed's lines", () => zed.got.length >= 2, {
    expected: "zed (a member of the room) to be sent two lines",
    actual: () => `zed was sent ${JSON.stringify(zed.got)}`,
  });
  t.expectEqual(
    zed.take(),
    [bare(say.joined("alice")), "alice> hi zed"],
    "what zed was sent",
    "an empty line is ignored: nothing is broadcast for it",
  );
  await alice.send("/nick alice\n");
  await expectReply(
    say.youAreNow("alice"),
    "alice asks for the name she already has",
    "asking for your own name is answered `* you are now NAME`, and nobody else is told",
  );
  await alice.send("/quit\n");
  await expectReply(say.bye, "alice sends /quit");
  await alice.expectEnd({
    cleanly: true,
    step: "the server closes alice's connection",
    note: "after `* bye`, handleClient closes the connection (FIN)",
  });
  await t.step("handleClient returns after /quit", () => handling);
  t.expectEqual(
    zed.take(),
    [bare(say.left("alice"))],
    "what zed was sent after alice asked for her own name, then quit",
    "asking for your own name tells nobody; quitting tells everyone `* NAME left`",
  );
  t.expectEqual(room.names, ["zed"], "room.names after alice quit");
});

suite.test("handleClient ends quietly when its client resets or closes", async (t) => {
  const { room, zed, serveOne } = await roomWithZed(t);
  for (const how of ["reset", "close"] as const) {
    const { client, handling } = await serveOne(how === "reset" ? "carol" : "dave", {
      resettable: how === "reset",
    });
    const name = client.label;
    await client.send(`/nick ${name}\n`);
    await client.expect(say.welcome(name), { step: `${name} sends /nick ${name}` });
    if (how === "reset") await client.reset();
    else await client.close();
    await t.step(
      `${HANDLE_CALL} returns after ${name} ${
        how === "reset" ? "resets the connection (RST)" : "closes it (EOF)"
      }`,
      () => handling,
      {
        note: "a client that vanishes is an ordinary end, not an error: isConnectionGone(error) " +
          "recognises a reset; leave the room, end the outbox, close, and return normally",
      },
    );
    t.expectEqual(
      zed.take(),
      [bare(say.joined(name)), bare(say.left(name))],
      `what zed was sent while ${name} joined and vanished`,
    );
  }
  t.expectEqual(room.names, ["zed"], "room.names after both vanished");
});

suite.test("handleClient: a client the room dropped is out, though it keeps its name", async (t) => {
  const { room, zed, serveOne } = await roomWithZed(t);
  /** A member that drops alice from the room the moment it is told she joined. */
  class Dropper extends Recorder {
    override send(line: string): boolean {
      const sent = super.send(line);
      if (line === bare(say.joined("alice"))) {
        const alice = room.members.find((member) => member.name === "alice");
        if (alice) room.drop(alice);
      }
      return sent;
    }
  }
  const dropper = new Dropper("dropper");
  room.join(dropper, "dropper");
  zed.take();
  dropper.take();
  const { client: alice, handling } = await serveOne("alice");
  await alice.send("/nick alice\nhello after my drop\n");
  await t.step(
    `${HANDLE_CALL} returns after the room drops alice (its hang-up closes her connection)`,
    () => handling,
    {
      note: "room.drop hangs up on the client: its outbox stops and its connection is closed " +
        "under the reader; that is an ordinary end, not an error",
    },
  );
  for (const member of [zed, dropper]) {
    t.expectEqual(
      [...member.take()].sort(),
      [bare(say.dropped("alice")), bare(say.joined("alice"))],
      `what ${member.label} was sent after alice sent "/nick alice" and "hello after my drop" ` +
        "in one write, and the room dropped her as soon as she joined",
      "the room dropped alice right after she joined, so her next line comes from a client " +
        "that is no longer in the room: it is not a message (it gets `! join first`, which " +
        'nobody reads). "Joined" means in the room: ask room.includes(client), not whether ' +
        "the client has a name (a dropped client keeps its name)",
    );
  }
  t.expectEqual(room.names, ["zed", "dropper"], "room.names after alice was dropped");
});

// ── the whole server ────────────────────────────────────────────────────────

suite.test("three clients chat: each message reaches the two others in order, never its sender", async (t) => {
  const server = await startServer(t);
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice], "bytes");
  const carol = await join(t, server, "carol", [alice, bob]);
  await chat(alice, "hello everyone", [bob, carol]);
  await chat(bob, "héllo 世界, typed one byte at a time", [alice, carol], "bytes");
  await carol.send("one\ntwo\nthree\n");
  for (const other of [alice, bob]) {
    await other.expect(
      say.message("carol", "one") + say.message("carol", "two") + say.message("carol", "three"),
      {
        step: `${other.label} receives carol's three lines (sent in one write)`,
        note: "three lines in one write are three messages, in order",
      },
    );
  }
  await chat(alice, "and the last word", [bob, carol]);
  await chat(bob, "no, mine", [alice, carol]);
  await t.step("server.close()", () => server.close());
  await t.step("server.close() a second time", () => server.close(), {
    note: "close() may be called again (a program's shutdown path and its clean-up often both " +
      "call it): once closing has begun, a later call has nothing to do and resolves",
  });
  t.expectEqual(
    server.room.names,
    [],
    "server.room.names once server.close() has resolved",
    "close() resolves only after every handler has finished, and each handler leaves the room " +
      "on its way out: await the handlers' promises (Promise.allSettled) in close()",
  );
  for (const probe of [alice, bob, carol]) {
    await probe.expectEnd({
      step: `${probe.label}'s connection ends after server.close()`,
      note: "close() closes every client's connection, and sends nothing more: a read that " +
        "fails because the server closed the connection is a normal end, not a line that was " +
        "too long",
    });
  }
});

suite.test("/nick: names are checked, renames are announced", async (t) => {
  const server = await startServer(t);
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  const carol = await t.connect(server.addr, "carol");
  const NAMES_NOTE = "names are 1 to 16 letters, digits, _ or -, and unique; text before joining " +
    "is refused";
  const COMMAND_NOTE = "a command is the line's first word, up to the first space: only `/nick` " +
    "and `/quit` are known, as whole words (`/quit` alone or followed by a space). Any other " +
    "word starting with `/` (`/nickcarol`, `/quitter`) is an unknown command, answered with " +
    "that word alone, not the rest of the line; the connection stays open";
  const attempts: [string, string, string][] = [
    ["hi all", say.joinFirst, NAMES_NOTE],
    ["/nick bob", say.nameTaken("bob"), NAMES_NOTE],
    ["/nick bad name!", say.badName, NAMES_NOTE],
    ["/nick", say.badName, NAMES_NOTE],
    ["/nick seventeen-chars-x", say.badName, NAMES_NOTE],
    ["/nick two words", say.badName, NAMES_NOTE],
    ["/dance", say.unknownCommand("/dance"), COMMAND_NOTE],
    ["/dance wildly", say.unknownCommand("/dance"), COMMAND_NOTE],
    ["/nickcarol", say.unknownCommand("/nickcarol"), COMMAND_NOTE],
    ["/quitter", say.unknownCommand("/quitter"), COMMAND_NOTE],
  ];
  for (const [line, reply, note] of attempts) {
    await carol.send(`${line}\n`);
    await carol.expect(reply, {
      step: `carol (not joined yet) sends ${JSON.stringify(line)}`,
      note,
    });
  }
  await carol.send("/nick  carol \n");
  await carol.expect(say.welcome("carol"), {
    step: 'carol sends "/nick  carol " (spaces around)',
    note: "the spaces around a name are not part of it: trim them",
  });
  for (const other of [alice, bob]) {
    await other.expect(say.joined("carol"), {
      step: `${other.label} is told that carol joined`,
      note: "nothing carol sent before joining reaches anyone",
    });
  }
  await bob.send("/nick robert\n", { split: "bytes" });
  await bob.expect(say.youAreNow("robert"), {
    step: "bob sends /nick robert",
    note: "the renamed client gets `* you are now NEW`",
  });
  for (const other of [alice, carol]) {
    await other.expect(say.renamed("bob", "robert"), {
      step: `${other.label} is told that bob is now robert`,
      note: "the others get `* OLD is now NEW`",
    });
  }
  await alice.send("/nick robert\n");
  await alice.expect(say.nameTaken("robert"), { step: "alice asks for robert's new name" });
  await bob.send("thanks\n");
  for (const other of [alice, carol]) {
    await other.expect(say.message("robert", "thanks"), {
      step: `${other.label} receives robert's "thanks"`,
      note: "messages carry the sender's current name",
    });
  }
  await carol.send("/nick bob\n");
  await carol.expect(say.youAreNow("bob"), {
    step: "carol takes the name bob, now free",
    note: "a name is free again once its owner renamed",
  });
});

suite.test("/quit: a bye and a clean close; the others are told and chat on", async (t) => {
  const server = await startServer(t);
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  const carol = await join(t, server, "carol", [alice, bob]);
  await bob.send("last words\n/quit see you\n");
  for (const other of [alice, carol]) {
    await other.expect(say.message("bob", "last words") + say.left("bob"), {
      step: `${other.label} receives bob's last words, then that bob left`,
      note: "a line sent just before /quit is still delivered; then the others get `* NAME left`",
    });
  }
  await bob.expect(say.bye, {
    step: 'bob sends "/quit see you" and receives * bye',
    note: "/quit gets `* bye`, then the server closes the connection; words after `/quit ` are " +
      "ignored",
  });
  await bob.expectEnd({
    cleanly: true,
    step: "the server closes bob's connection (FIN)",
    note: "close the connection after writing `* bye`: await the outbox's end(), then close",
  });
  await chat(alice, "still here", [carol]);
  await join(t, server, "bob", [alice, carol]);
});

suite.test("a client that vanishes (reset or EOF) is removed; the others are told and chat on", async (t) => {
  const server = await startServer(t);
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  // A resettable probe: carol joins, then vanishes with a reset, like a crashed client.
  const carol = await t.connect(server.addr, "carol", { resettable: true });
  await carol.send("/nick carol\n");
  await carol.expect(say.welcome("carol"), { step: "carol sends /nick carol and is welcomed" });
  for (const other of [alice, bob]) {
    await other.expect(say.joined("carol"), { step: `${other.label} is told that carol joined` });
  }
  await carol.reset();
  for (const other of [alice, bob]) {
    await other.expect(say.left("carol"), {
      step: `${other.label} is told that carol left`,
      note: "a read that fails with ConnectionReset means the client is gone: remove it and tell " +
        "the others, like an EOF",
    });
  }
  const dave = await join(t, server, "dave", [alice, bob]);
  await dave.close(); // EOF, without /quit
  for (const other of [alice, bob]) {
    await other.expect(say.left("dave"), {
      step: `${other.label} is told that dave left`,
      note: "read() returning null (EOF) means the client is gone: remove it and tell the others",
    });
  }
  await t.reset(server.addr, "mallory");
  await t.reset(server.addr, "trudy", "/nick tru");
  await chat(alice, "anyone still here?", [bob]);
  await chat(bob, "me", [alice]);
  await t.eventually(
    "server.room.names",
    () => JSON.stringify(server.room.names) === JSON.stringify(["alice", "bob"]),
    {
      expected: 'the registry to hold ["alice", "bob"]',
      actual: () => `it holds ${JSON.stringify(server.room.names)}`,
      note: "clients that vanished must leave the registry",
    },
  );
  await join(t, server, "carol", [alice, bob]);
});

suite.test("invalid UTF-8 gets a reply and goes no further; split characters arrive whole", async (t) => {
  const server = await startServer(t);
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  const badLines = [
    new Uint8Array([0x62, 0x61, 0x64, 0x20, 0xff, 0x0a]), // "bad \xff"
    new Uint8Array([0x63, 0x75, 0x74, 0x20, 0xe4, 0xb8, 0x0a]), // "cut " + 2 of 3 bytes of 世
  ];
  for (const line of badLines) {
    await alice.send(line);
    await alice.expect(say.invalidUtf8, {
      step: `alice sends ${showBytes(line)} (not UTF-8)`,
      note: "decode each complete line with new TextDecoder('utf-8', { fatal: true }): invalid " +
        "bytes throw, and the client gets `! invalid UTF-8, line ignored`",
    });
  }
  await t.noted(
    "an invalid line is not sent on: bob's next line is alice's next valid message",
    () => chat(alice, "ok: 世界 ✓ ß", [bob], "bytes"),
  );
});

suite.test("an oversized line gets a reply, then the server closes that connection", async (t) => {
  const max = 64;
  const server = await startServer(t, { maxLineBytes: max });
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  await chat(alice, "x".repeat(max), [bob]);
  await alice.send("y".repeat(3 * max)); // no newline: the server must not wait for one
  await alice.expect(say.tooLong(max), {
    step: `alice sends ${3 * max} bytes without a newline`,
    note: "readLines throws LineTooLongError as soon as a line is too long: reply " +
      "`! line too long (max N bytes), bye`, then close",
  });
  await alice.expectEnd({ step: "the server closes alice's connection" });
  await bob.expect(say.left("alice"), {
    step: "bob is told that alice left",
    note: "the others see an ordinary leave",
  });
  const carol = await join(t, server, "carol", [bob]);
  await chat(bob, "carry on", [carol]);
});

suite.test("the server's options: its default address, a port it is given, two servers at once", async (t) => {
  const { startChatServer } = await loadServer(t);
  const port = freePort("tcp");
  const first = await t.step(
    `startChatServer({ port: ${port} }) (no hostname: the default)`,
    () => startChatServer({ port }),
  );
  t.defer(() => first.close());
  t.expectEqual(
    { hostname: first.addr.hostname, port: first.addr.port },
    { hostname: "127.0.0.1", port },
    "server.addr of startChatServer({ port })",
    "the hostname defaults to 127.0.0.1; a port that is given is the port listened on",
  );
  const second = await startServer(t);
  // The same names on both servers: each server has its own room.
  const alice1 = await join(t, first, "alice", []);
  const bob1 = await join(t, first, "bob", [alice1]);
  const alice2 = await t.noted(
    "two servers in one program have a room each: a name taken on one is free on the other " +
      "(make the room inside startChatServer, not once for the module)",
    () => join(t, second, "alice", []),
    "before",
  );
  await chat(alice1, "on the first server", [bob1]);
  await chat(bob1, "here too", [alice1]);
  await alice2.send("on the second server\n");
  await alice2.send("/quit\n");
  await alice2.expect(say.bye, { step: "alice on the second server quits" });
  await chat(alice1, "still only us", [bob1]);
  const rooms = () => JSON.stringify([first.room.names, second.room.names]);
  await t.eventually("the rooms of the two servers", () => rooms() === '[["alice","bob"],[]]', {
    expected: 'first.room.names ["alice", "bob"] and second.room.names [] (alice quit there)',
    actual: () => `they are ${rooms()}`,
    note: "each server has a room of its own",
  });
});

suite.test("a server told to listen on ::1 is reached there", async (t) => {
  const server = await startServer(t, { hostname: "::1" });
  t.expectEqual(
    server.addr.hostname,
    "::1",
    'server.addr.hostname of startChatServer({ hostname: "::1", port: 0 })',
    "listen on the hostname you are given (options.hostname); 127.0.0.1 only by default",
  );
  const alice = await join(t, server, "alice", []);
  const bob = await join(t, server, "bob", [alice]);
  await chat(alice, "over IPv6", [bob]);
}, { requires: ["ipv6"] });

/**
 * Starts your server as `step` says (on 127.0.0.1 port 0, with `options`),
 * its listener behind the grader's gate, paused; returns once its accept
 * loop waits in accept().
 */
async function gatedServer(
  t: Grader,
  step: string,
  options: ServerLesson.ChatServerOptions = {},
): Promise<{ server: ChatServer; gate: ListenerGate }> {
  const { startChatServer } = await loadServer(t);
  const { value: server, gate } = await t.step(
    step,
    () =>
      gateListen(() => startChatServer({ hostname: "127.0.0.1", port: 0, ...options }), "paused"),
  );
  t.defer(async () => {
    gate.open();
    await server.close();
  });
  await t.eventually("your server calls accept()", () => gate.waiting === 1, {
    expected: "your accept loop to wait in listener.accept() once the server has started",
    actual: () => `accept() called ${gate.accepts} time(s), ${gate.waiting} pending`,
  });
  return { server, gate };
}

suite.test("the server keeps accepting after a client resets in the accept queue", async (t) => {
  const { server, gate } = await gatedServer(
    t,
    'startChatServer({ hostname: "127.0.0.1", port: 0 }), its listener behind the grader\'s gate',
  );
  // The server is in accept(), but the gate keeps the call from reaching the kernel while
  // mallory connects and resets, and bob connects: both wait in the queue.
  await t.reset(server.addr, "mallory", "/nick mallory\n");
  const bob = await t.connect(server.addr, "bob");
  await bob.send("/nick bob\n");
  gate.open(); // accept() meets mallory first: it throws NotConnected
  await bob.expect(say.welcome("bob"), {
    step: "bob, queued behind mallory's reset, is welcomed",
    note: "a client that resets while it waits in the queue makes accept() throw (NotConnected): " +
      "that is the client's end, not the server's; accept the next one",
  });
});

const BACKOFF_NOTE = "out of descriptors, accept() fails (EMFILE) while the client stays queued " +
  "in the kernel, so retrying at once only spins and floods the log, and giving up leaves the " +
  "server deaf for good. When isOutOfDescriptors(error), await options.pause(ms) and accept " +
  "again: 10 ms first, doubling each time up to 1000 ms; once accept() works again, the next " +
  'shortage starts at 10 ms again (docs/06-chat.md, "Under attack")';

const LOG_ONCE_NOTE = "log one warning when accepting runs out of descriptors, not one line per " +
  "failed attempt: at the first failure of the episode only. Once accept() works again the " +
  "episode is over, so the next one gets its own warning";

suite.test("out of descriptors, the server backs off, warns once, and recovers", async (t) => {
  const records = await captureLogs(t);
  const loud = () => records.filter((r) => r.level !== "debug" && r.level !== "info");
  const seen: { gate?: ListenerGate } = {}; // the gate, once the server has started
  const { pause, calls } = recordPauses(t, { snapshot: () => seen.gate?.accepts ?? 0 });
  /** accept() calls made while this pause was still running (0: it waited). */
  const acceptsDuring = (call: (typeof calls)[number]) =>
    call.after === undefined ? 0 : call.after - call.before;
  const { server, gate } = await gatedServer(
    t,
    'startChatServer({ hostname: "127.0.0.1", port: 0, pause }) with the grader\'s pause',
    { pause },
  );
  seen.gate = gate;
  const episode = async (failures: number, name: string, which: string) => {
    calls.length = 0;
    const logged = loud().length;
    const before = gate.accepts;
    gate.failNext(failures);
    t.transcript.record("grader", "note", {
      detail: `the next ${failures} accept() calls fail: Too many open files (os error 24)`,
    });
    const probe = await t.connect(server.addr, name);
    await probe.send(`/nick ${name}\n`);
    gate.open();
    // A server that pauses on a timer of its own, or gives up, is known at once, not after its
    // own pauses have run.
    await t.eventually(
      `your server's first pause, once accept() failed with EMFILE (${which} shortage)`,
      () => calls.length > 0,
      {
        expected: "a call of options.pause",
        actual: () =>
          `no call of options.pause; accept() was called ${gate.accepts - before} time(s)`,
        note: BACKOFF_NOTE,
      },
    );
    await probe.expect(say.welcome(name), {
      step: `${name} is welcomed after ${failures} accept() calls failed with EMFILE ` +
        `(${which} shortage)`,
      timeoutMs: 4000,
      note: BACKOFF_NOTE,
    });
    judgeBackoffEpisode(t, {
      calls,
      failures,
      which,
      episode: "shortage",
      failing: "accept()",
      pause: "pause",
      callsDuring: acceptsDuring,
      callsMade: () => `accept() was called ${gate.accepts - before} time(s)`,
      awaitAdvice: "await the pause, then accept again",
      logged: loud().slice(logged),
      backoffNote: BACKOFF_NOTE,
      logOnceNote: LOG_ONCE_NOTE,
    });
    return probe;
  };
  const alice = await episode(9, "alice", "first");
  // The loop is back in the kernel's accept(); carol takes that call, the next waits at the gate.
  gate.pause();
  const carol = await join(t, server, "carol", [alice]);
  await t.eventually("your server calls accept() again", () => gate.waiting === 1, {
    expected: "the accept loop back in listener.accept() once carol is served",
    actual: () => `accept() called ${gate.accepts} time(s), ${gate.waiting} pending`,
  });
  const bob = await episode(2, "bob", "second");
  await alice.expect(say.joined("bob"), { step: "alice is told that bob joined" });
  await carol.expect(say.joined("bob"), { step: "carol is told that bob joined" });
  await chat(alice, "the room works again", [carol, bob]);
});

suite.test("out of descriptors, the server's default pause is a real timer", async (t) => {
  await captureLogs(t); // the warning stays out of the report
  const { server, gate } = await gatedServer(
    t,
    'startChatServer({ hostname: "127.0.0.1", port: 0 })',
  );
  const first = gate.accepts - 1;
  gate.failNext(3);
  const alice = await t.connect(server.addr, "alice");
  await alice.send("/nick alice\n");
  gate.open();
  await alice.expect(say.welcome("alice"), {
    step: "alice is welcomed after 3 accept() calls failed with EMFILE",
    // The three real pauses, then a step.
    timeoutMs: expectedBackoff(3).reduce((a, b) => a + b) + STEP_MS,
    note: BACKOFF_NOTE,
  });
  const times = gate.callTimes.slice(first, first + 4);
  const gaps = times.slice(1).map((time, i) => time - times[i]);
  // Timers never fire early, so these are lower bounds however busy the machine is.
  t.check(gaps.length === 3 && gaps.every((gap, i) => gap >= expectedBackoff(3)[i] - 1), {
    step: "the time between your server's accept() calls after each EMFILE",
    expected: `at least ${expectedBackoff(3).join(", ")} ms`,
    actual: gaps.map((gap) => `${gap.toFixed(1)} ms`).join(", ") || "no retry",
    note: "without options.pause, wait with a timer (the given sleep(ms)): options.pause ?? sleep",
  });
});

suite.test("the server forgets each client once it is gone", async (t) => {
  const server = await startServer(t);
  const port = server.addr.port;
  const quit = new TextEncoder().encode("/quit\n");
  const buffer = new Uint8Array(64);
  // Raw connections, outside the transcript, so the grader's own memory stays flat. Each ends
  // with a reset once the server has closed: no TIME_WAIT socket is left behind on either side
  // (thousands of them would slow down every program that reads the kernel's socket tables).
  const visit = async () => {
    const conn = await ResettableConn.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(quit);
      while (await conn.read(buffer) !== null); // "* bye\n", then the server closes
    } finally {
      await conn.reset();
    }
  };
  const visits = (n: number, what: string) =>
    t.step(`${n} clients send /quit, one after another (${what})`, async () => {
      for (let i = 0; i < n; i++) await visit();
    }, { timeoutMs: 8000 });
  // Warm-up, then a first round that lets the heap settle (what earlier checks left behind is
  // collected during it), then the round that is measured.
  await visits(CLIENT_WARM_UP, "warm-up");
  await visits(CLIENT_ROUNDS, "settling");
  const before = heapAfterGc();
  await visits(CLIENT_ROUNDS, "measured");
  const after = heapAfterGc();
  if (before === undefined || after === undefined) return; // no --expose-gc: nothing to measure
  // Kept per client: a connection costs about 1 KB, a settled promise about 80 bytes; measured
  // this way, a server that keeps nothing moves by a few KB.
  const grown = after - before;
  t.check(grown < CLIENT_ROUNDS * BYTES_PER_CLIENT, {
    step: `the heap after ${CLIENT_ROUNDS} more clients came and went`,
    expected: `about what it was (less than ${CLIENT_ROUNDS * BYTES_PER_CLIENT} bytes more)`,
    actual: `${grown} bytes more (${Math.round(grown / CLIENT_ROUNDS)} per client)`,
    note: "when a handler finishes, delete its connection and its promise from the server's " +
      "sets (in a finally): a long-running server that keeps anything of every finished " +
      "client runs out of memory",
  });
}, { timeoutMs: 20_000 });

suite.test("a client that stops reading is dropped; the others never wait for it", async (t) => {
  // maxQueuedBytes is left out: the default (256 KiB) applies.
  const server = await startServer(t, { maxLineBytes: 64 * 1024 });
  const alice = await join(t, server, "alice", []);
  const slow = await t.connect(server.addr, "slow", { read: false });
  await slow.send("/nick slow\n");
  await alice.expect(say.joined("slow"), { step: "alice is told that slow joined" });
  const bob = await join(t, server, "bob", [alice]);
  // slow reads nothing from now on. Its socket buffers fill (a few MB on loopback), then its
  // outbox; alice and bob must not notice, until slow is dropped.
  const filler = "x".repeat(60_000);
  const maxMessages = 600; // 36 MB: far beyond any kernel buffer plus a 256 KiB queue
  let dropped = false;
  let sent = 0;
  for (let i = 1; i <= maxMessages && !dropped; i++) {
    const text = `${String(i).padStart(4, "0")} ${filler}`;
    await alice.send(`${text}\n`, { step: `alice sends message #${i} (60 kB)` });
    sent += text.length + 1;
    while (true) {
      const line = decoder.decode(
        await bob.readUntil("\n", {
          step: `bob receives alice's message #${i}`,
          maxBytes: 128 * 1024,
          note: `one client that does not read must not stall the others: bob waited for ` +
            `alice's message #${i} while ${(sent / 1e6).toFixed(1)} MB went to slow unread. ` +
            `Queue lines per client (offer) and let each client's own writer loop wait for its ` +
            `socket; never await a client's write in the broadcast loop`,
        }),
      );
      if (line === say.dropped("slow")) {
        dropped = true;
        continue;
      }
      if (line === say.message("alice", text)) break;
      t.fail({
        step: `bob receives alice's message #${i}`,
        expected: showBytes(say.message("alice", text), 40),
        actual: showBytes(line, 80),
        note: "every other client gets every message, in order, also while a slow one is dropped",
      });
    }
  }
  t.check(dropped, {
    step: "wait for slow to be dropped",
    expected: `\`* slow dropped (too slow)\` once slow's outbox (256 KiB by default) is full`,
    actual: `alice sent ${maxMessages} messages (${(sent / 1e6).toFixed(1)} MB) that slow never ` +
      `read, and slow is still in the room`,
    note: "bound each client's outbox: offer() returns false past maxQueuedBytes, and the room " +
      "drops that client; without the option, the limit is DEFAULT_MAX_QUEUED_BYTES",
  });
  await alice.expect(say.dropped("slow"), {
    step: "alice is told that slow was dropped",
    note: "the sender is told too",
  });
  slow.startReading();
  await slow.readToEnd({
    step: "the server closes slow's connection",
    timeoutMs: 10_000,
    note: "dropping a client hangs up on it: close its connection",
  });
  await chat(bob, "that was slow", [alice]);
  t.expectEqual(server.room.names, ["alice", "bob"], "server.room.names after the drop");
}, { timeoutMs: 45_000 });

// ── the client ──────────────────────────────────────────────────────────────

/** What the client printed, with a wait for the next lines. */
class Printed {
  readonly lines: string[] = [];
  #seen = 0;
  readonly print = (line: string) => void this.lines.push(line);

  /** Waits for `expected` to be the next lines printed. */
  async expect(t: Grader, expected: string[], step: string, note?: string): Promise<void> {
    const want = this.#seen + expected.length;
    await t.eventually(step, () => this.lines.length >= want, {
      expected: `your client to print ${JSON.stringify(expected)}`,
      actual: () => `it printed ${JSON.stringify(this.lines.slice(this.#seen))}`,
      note,
    });
    t.expectEqual(this.lines.slice(this.#seen, want), expected, step, note);
    this.#seen = want;
  }
}

/**
 * Runs your runChatClient as a step awaited later, against a grader server
 * (on `options.hostname`, default 127.0.0.1): joining as `nick`, reading the
 * `typed` input (or `options.input`), printing to `printed`. Returns once it
 * has connected, with `conn`, the grader's end of its connection.
 */
async function clientOnGraderServer(
  t: Grader,
  nick: string,
  options: { hostname?: string; input?: AsyncIterable<string>; maxLineBytes?: number } = {},
) {
  const { runChatClient } = await loadClient(t);
  const { hostname, input, maxLineBytes } = options;
  const accepted = Promise.withResolvers<Probe>();
  const server = t.serve((conn) => Promise.resolve(accepted.resolve(conn)), { hostname });
  const typed = new TypedInput();
  const printed = new Printed();
  const call = `runChatClient({ ${hostname === undefined ? "" : `hostname: "${hostname}", `}` +
    `port: ${server.addr.port}, nick: "${nick}"` +
    `${maxLineBytes === undefined ? "" : `, maxLineBytes: ${maxLineBytes}`}, … })`;
  const { done: client } = await running(
    t,
    call,
    () =>
      runChatClient({
        ...server.addr,
        nick,
        input: input ?? typed,
        print: printed.print,
        ...("maxLineBytes" in options ? { maxLineBytes } : {}),
      }),
    10_000,
  );
  const conn = await whileStillRunning(
    client,
    `your client connects${hostname === undefined ? "" : ` to [${hostname}]`}`,
    accepted.promise,
  );
  return { client, conn, typed, printed };
}

suite.test("your client prints what arrives while it waits for input, and sends what is typed", async (t) => {
  const { client, conn, typed, printed } = await clientOnGraderServer(t, "alice");
  await conn.expect("/nick alice\n", {
    step: "your client's first line",
    note: "the client joins first: its first line is `/nick NAME`",
  });
  await conn.send(say.welcome("alice") + say.message("bob", "héllo 世界"), { split: "bytes" });
  await printed.expect(
    t,
    ["* welcome alice", "bob> héllo 世界"],
    "lines from the server (sent 1 byte at a time) are printed while nothing is typed",
    "the receive loop runs on its own, concurrently with the send loop: lines arrive while " +
      "your client waits for input. Decode whole lines, so split characters stay whole",
  );
  typed.type("hi bob");
  await conn.expect("hi bob\n", { step: 'the user types "hi bob"' });
  await conn.send(say.message("bob", "one") + say.message("carol", "two"));
  await printed.expect(t, ["bob> one", "carol> two"], "two lines in one write are printed");
  typed.type("/quit");
  await conn.expect("/quit\n", { step: 'the user types "/quit"' });
  await conn.send(say.bye);
  await conn.closeWrite();
  const end = await t.step(
    "runChatClient returns after /quit and the server's close",
    () => client,
  );
  t.expectEqual(end, "quit", "runChatClient's result");
  await printed.expect(t, ["* bye"], "the last line is printed");
  await conn.expectEnd({ step: "your client closes its connection" });
});

suite.test("your client stops when the server goes away, without waiting for input", async (t) => {
  const { client, conn, typed, printed } = await clientOnGraderServer(t, "alice");
  await conn.expect("/nick alice\n", { step: "your client's first line" });
  await conn.send(say.welcome("alice"));
  await printed.expect(t, ["* welcome alice"], "the welcome is printed");
  await conn.closeWrite(); // the server goes away; the user types nothing
  const end = await t.step("runChatClient returns although nothing is typed", () => client, {
    note: "race the next typed line against the end of the receive loop: when the server " +
      "closes, the client is over even if the user never types again. Call input.return() " +
      "without awaiting it: on real stdin it settles only after the read still pending (the " +
      "user's next line)",
  });
  t.expectEqual(end, "server closed", "runChatClient's result");
  await conn.expectEnd({ step: "your client closes its connection" });
  t.check(typed.returned, {
    step: "your client lets go of its input",
    expected: "iterator.return() called on the input (so stdin can be released)",
    actual: "it was not called",
  });
});

suite.test("when input ends (Ctrl-D), your client says /quit and waits for the server", async (t) => {
  const { client, conn, typed } = await clientOnGraderServer(t, "bob");
  await conn.expect("/nick bob\n", { step: "your client's first line" });
  typed.type("bye for now");
  typed.end();
  await conn.expect("bye for now\n/quit\n", {
    step: "the last typed line, then /quit",
    note: "the end of input means the same as typing /quit",
  });
  await conn.send(say.bye);
  await conn.closeWrite();
  t.expectEqual(await t.step("runChatClient returns", () => client), "quit", "its result");
  await conn.expectEnd({ step: "your client closes its connection" });
});

/** A grader-side server (node:net) for one client, which it can reset (RST) like a crashed server. */
async function resettableServer(t: Grader, options: { read?: boolean } = {}) {
  const sockets: net.Socket[] = [];
  let received = "";
  const accepted = Promise.withResolvers<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("error", () => {});
    if (options.read === false) socket.pause();
    else socket.on("data", (chunk: Uint8Array) => received += decoder.decode(chunk));
    sockets.push(socket);
    accepted.resolve(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.defer(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    addr: { hostname: "127.0.0.1", port: (server.address() as net.AddressInfo).port },
    accepted: accepted.promise,
    received: () => received,
  };
}

suite.test("your client ends quietly when the server resets the connection", async (t) => {
  const { runChatClient } = await loadClient(t);
  const server = await resettableServer(t);
  const typed = new TypedInput();
  const printed = new Printed();
  const { done: client } = await running(
    t,
    `runChatClient({ port: ${server.addr.port}, nick: "alice", … })`,
    () =>
      runChatClient({ port: server.addr.port, nick: "alice", input: typed, print: printed.print }),
    10_000,
  );
  const socket = await whileStillRunning(client, "your client connects", server.accepted);
  await t.eventually(
    "the server receives /nick alice",
    () => server.received() === "/nick alice\n",
    {
      expected: 'your client (connecting to 127.0.0.1: no hostname given) to send "/nick alice\\n"',
      actual: () => `the server received ${JSON.stringify(server.received())}`,
    },
  );
  socket.resetAndDestroy();
  const end = await t.step("runChatClient returns after the server's reset", () => client, {
    note: "a reset is one of the ways a connection ends (isConnectionGone): the receive loop " +
      'ends quietly, and the client returns "server closed"',
  });
  t.expectEqual(end, "server closed", "runChatClient's result after a reset");
});

suite.test('your client returns "server closed" when its write fails', async (t) => {
  const { runChatClient } = await loadClient(t);
  // This server never reads: the client's write of a long line cannot finish.
  const server = await resettableServer(t, { read: false });
  const typed = new TypedInput();
  const { done: client } = await running(
    t,
    `runChatClient({ port: ${server.addr.port}, nick: "alice", … })`,
    () => runChatClient({ ...server.addr, nick: "alice", input: typed, print: () => {} }),
    10_000,
  );
  const socket = await whileStillRunning(client, "your client connects", server.accepted);
  await t.eventually("your client waits for input", () => typed.waiting, {
    expected: "your client to ask its input for a line",
    actual: () => `it asked ${typed.reads} time(s) and is not waiting`,
  });
  typed.type("x".repeat(16 * 1024 * 1024)); // more than any socket buffer takes
  socket.resetAndDestroy(); // while your client is still writing that line
  const end = await t.step(
    "runChatClient returns after the server reset the connection while a 16 MB line was " +
      "being written",
    () => client,
    {
      // 16 MB are encoded and pushed until the reset fails the write: a correct client once
      // used 99 % of one step on a busy self-check (its margins), 25 % on others.
      timeoutMs: 4 * STEP_MS,
      note: "a write that fails because the connection is gone (a reset, a broken pipe) means " +
        'the server went away: catch it, and return "server closed"',
    },
  );
  t.expectEqual(end, "server closed", "runChatClient's result after its write failed");
});

suite.test("your client passes an error of its input through, and closes its connection", async (t) => {
  const { runChatClient } = await loadClient(t);
  const server = t.serve(() => Promise.resolve());
  const broken: AsyncIterable<string> = {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.reject(new Error("the terminal went away")),
    }),
  };
  await t.expectError(
    `runChatClient({ port: ${server.addr.port}, nick: "alice", input: <an input whose next() ` +
      "rejects> })",
    () => runChatClient({ ...server.addr, nick: "alice", input: broken, print: () => {} }),
    {
      name: "Error",
      message: "the terminal went away",
      what: "the input's own error",
      note: 'only the endings of the connection mean "server closed"; an error of the input ' +
        "is not one of them: let it out (and close the connection in finally)",
    },
  );
  await t.eventually("your client's connection", () => server.conns.length > 0, {
    expected: "your client to have connected before it asked for input",
    actual: () => "no connection arrived",
  });
  await server.conns[0].expect("/nick alice\n", { step: "your client's first line" });
  await server.conns[0].expectEnd({ step: "your client closes its connection" });
});

suite.test("your client's options: maxLineBytes, its default, and an input without return()", async (t) => {
  for (const max of [16, undefined]) {
    const limit = max ?? 64 * 1024;
    // An input without return(): the iterator protocol makes it optional.
    const input: AsyncIterable<string> = {
      [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => {}) }),
    };
    const { client, conn, printed } = await clientOnGraderServer(t, "alice", {
      input,
      maxLineBytes: max,
    });
    await conn.expect("/nick alice\n", { step: "your client's first line" });
    const fits = "a".repeat(limit);
    await conn.send(`${fits}\n`);
    await printed.expect(
      t,
      [fits],
      `a line of exactly ${limit} bytes (maxLineBytes ${max ?? "not given: 64 KiB"}) is printed`,
    );
    await conn.send(`${"b".repeat(limit + 1)}\n`);
    const end = await t.step(
      `runChatClient returns after a line of ${limit + 1} bytes (the connection stays open)`,
      () => client,
      {
        note: "a line over maxLineBytes (64 KiB unless given) ends the receive loop quietly, " +
          "and the client with it",
      },
    );
    t.expectEqual(end, "server closed", "runChatClient's result after a line over its limit");
    t.expectEqual(printed.lines.length, 1, "how many lines your client printed");
    await conn.expectEnd({ step: "your client closes its connection" });
  }
});

suite.test("your client reaches a server on ::1", async (t) => {
  const { client, conn, typed } = await clientOnGraderServer(t, "alice", { hostname: "::1" });
  await conn.expect("/nick alice\n", {
    step: "your client's first line, over IPv6",
    note: "connect to options.hostname when it is given (127.0.0.1 only by default)",
  });
  typed.end();
  await conn.expect("/quit\n", { step: "the end of input sends /quit" });
  await conn.close();
  t.expectEqual(await t.step("runChatClient returns", () => client), "quit", "its result");
}, { requires: ["ipv6"] });

suite.test("receiveLoop lets an error of print through", async (t) => {
  const { receiveLoop } = await loadClient(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const accepted = listener.accept();
  const probe = await t.connect(listener.addr, "server");
  const conn = await accepted;
  t.defer(() => {
    try {
      conn.close();
    } catch { /* already closed */ }
  });
  await probe.send("hello\n");
  await t.expectError(
    "receiveLoop(conn, print, 100) where print throws on the first line",
    () =>
      receiveLoop(conn, () => {
        throw new Error("print failed");
      }, 100),
    {
      name: "Error",
      message: "print failed",
      what: "print's own error",
      note: "catch only the endings of a connection (isConnectionGone) and LineTooLongError; " +
        "any other error is a bug to report, not an ending",
    },
  );
});

suite.test("your clients on your server: join, talk, leave", async (t) => {
  const { runChatClient } = await loadClient(t);
  const server = await startServer(t);
  const zed = await join(t, server, "zed", []);
  const start = async (nick: string) => {
    const typed = new TypedInput();
    const printed = new Printed();
    const { done } = await running(
      t,
      `runChatClient({ port: ${server.addr.port}, nick: "${nick}", … })`,
      () => runChatClient({ ...server.addr, nick, input: typed, print: printed.print }),
      15_000,
    );
    return { typed, printed, done };
  };
  const alice = await start("alice");
  await whileStillRunning(alice.done, "alice joins", zed.expect(say.joined("alice")));
  await alice.printed.expect(t, [bare(say.welcome("alice"))], "alice prints her welcome");
  const bob = await start("bob");
  await whileStillRunning(bob.done, "bob joins", zed.expect(say.joined("bob")));
  await bob.printed.expect(t, [bare(say.welcome("bob"))], "bob prints his welcome");
  await alice.printed.expect(t, [bare(say.joined("bob"))], "alice prints that bob joined");
  alice.typed.type("hi bob");
  await zed.expect(say.message("alice", "hi bob"), { step: 'zed receives alice\'s "hi bob"' });
  await bob.printed.expect(t, ["alice> hi bob"], "bob prints alice's message");
  await zed.send("hello both\n");
  await alice.printed.expect(t, ["zed> hello both"], "alice prints zed's message");
  await bob.printed.expect(t, ["zed> hello both"], "bob prints zed's message");
  bob.typed.type("/quit");
  t.expectEqual(await t.step("bob's runChatClient returns", () => bob.done), "quit", "its result");
  await bob.printed.expect(t, [bare(say.bye)], "bob prints * bye");
  await zed.expect(say.left("bob"), { step: "zed is told that bob left" });
  await alice.printed.expect(t, [bare(say.left("bob"))], "alice prints that bob left");
  alice.typed.end();
  t.expectEqual(await t.step("alice's runChatClient returns", () => alice.done), "quit", "result");
  await zed.expect(say.left("alice"), { step: "zed is told that alice left" });
});

// ── load ────────────────────────────────────────────────────────────────────

const LOAD_CLIENTS = 50;
const LOAD_MESSAGES = 50;

suite.test(
  `load: ${LOAD_CLIENTS} clients × ${LOAD_MESSAGES} messages, none lost, each sender's order kept`,
  async (t) => {
    const server = await startServer(t, { maxQueuedBytes: 4 * 1024 * 1024 });
    const names = Array.from({ length: LOAD_CLIENTS }, (_, i) => `u${String(i).padStart(2, "0")}`);
    const clients: Probe[] = [];
    for (const name of names) {
      const probe = await t.connect(server.addr, name, { timeoutMs: 5000 });
      await probe.send(`/nick ${name}\n`);
      await probe.expect(say.welcome(name), {
        step: `${name} joins (${clients.length + 1} of ${LOAD_CLIENTS})`,
        timeoutMs: 5000,
      });
      clients.push(probe);
    }
    const text = (k: number) => `m${String(k).padStart(2, "0")}`;
    // What each client must receive in all: its welcome, a join notice for everyone who
    // came after it, then every message of everyone else.
    const expectedBytes = names.map((name, i) => {
      let n = say.welcome(name).length;
      for (const later of names.slice(i + 1)) n += say.joined(later).length;
      for (const other of names) {
        if (other === name) continue;
        for (let k = 0; k < LOAD_MESSAGES; k++) n += say.message(other, text(k)).length;
      }
      return n;
    });
    await t.step(`each client sends ${LOAD_MESSAGES} messages, all at once`, async () => {
      await Promise.all(clients.map(async (probe) => {
        for (let k = 0; k < LOAD_MESSAGES; k++) {
          await probe.send(`${text(k)}\n`, { step: `${probe.label} sends ${text(k)}` });
        }
      }));
    }, { timeoutMs: 20_000 });
    const deadline = 30_000;
    await Promise.allSettled(
      clients.map((probe, i) => probe.waitReceived(expectedBytes[i], { timeoutMs: deadline })),
    );
    t.throwIfInterrupted();
    // Check what arrived: per sender, exactly m00..m49 in order; never one's own.
    const problems: string[] = [];
    let delivered = 0;
    for (const [i, probe] of clients.entries()) {
      const lines = decoder.decode(probe.unread).split("\n").slice(0, -1);
      const bySender = new Map<string, string[]>();
      let joins = 0;
      for (const line of lines) {
        if (line.startsWith("* ") && line.endsWith(" joined")) {
          joins++;
          continue;
        }
        const match = line.match(/^(u\d\d)> (m\d\d)$/);
        if (!match) {
          problems.push(`${names[i]} received an unexpected line ${JSON.stringify(line)}`);
          continue;
        }
        bySender.set(match[1], [...(bySender.get(match[1]) ?? []), match[2]]);
      }
      if (joins !== LOAD_CLIENTS - 1 - i) {
        problems.push(`${names[i]} was told of ${joins} joins, not ${LOAD_CLIENTS - 1 - i}`);
      }
      if (bySender.has(names[i])) {
        problems.push(`${names[i]} received its own messages back`);
      }
      for (const sender of names) {
        if (sender === names[i]) continue;
        const got = bySender.get(sender) ?? [];
        delivered += got.length;
        const want = Array.from({ length: LOAD_MESSAGES }, (_, k) => text(k));
        if (got.join() === want.join()) continue;
        const missing = want.filter((m) => !got.includes(m));
        problems.push(
          missing.length
            ? `${names[i]} got ${got.length} of ${sender}'s ${LOAD_MESSAGES} messages ` +
              `(missing ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""})`
            : `${names[i]} got ${sender}'s messages out of order: ${got.join(" ")}`,
        );
      }
    }
    const total = LOAD_CLIENTS * (LOAD_CLIENTS - 1) * LOAD_MESSAGES;
    t.check(problems.length === 0, {
      step: `check what the ${LOAD_CLIENTS} clients received`,
      expected: `${total} messages delivered: every client gets each other client's ` +
        `${LOAD_MESSAGES} messages, in the order they were sent`,
      actual: `${delivered} delivered; ${problems.length} problem(s), e.g.:\n  ` +
        problems.slice(0, 6).join("\n  "),
      note: "each client's messages are read and broadcast in order by its own handler; nothing " +
        "may be lost or duplicated between the registry and the outboxes",
    });
  },
  { timeoutMs: 60_000 },
);
