/**
 * Grading suite of lesson 09 — a socketserver-style framework.
 * Run it with `deno task lesson 9`.
 *
 * Most checks plug a grader-written handler into your servers. It records
 * what it is asked to do (`setup A`, `handle A`, `finish A`, …) in the order it
 * happens, so ordering and overlap are checked from events, never from
 * timings. A request stays open for as long as the grader's client keeps its
 * connection open: that is how the grader holds request A while B runs.
 */
import { inspect } from "node:util";
import {
  captureLogs,
  concatBytes,
  describeError,
  gateListen,
  GradeFailure,
  type Grader,
  ioTurns,
  isGradeFailure,
  judgeBackoffEpisode,
  lessonSuite,
  type LogRecord,
  logText,
  nextTurn,
  type Probe,
  recordPauses,
  runDeadline,
  STEP_MS,
  waitFor,
  waitUntil,
  whileRunning,
} from "../workbook/harness/mod.ts";
import { isTodoError } from "../workbook/toolkit/todo.ts";
import type * as Lesson from "../solutions/09-socketserver/socketserver.ts";

const lessonNine = lessonSuite("09");

/**
 * The lesson's suite. When a starter stub was hit in the background (in a
 * handler, say) and the check then failed on its consequences (a connection
 * closed early), the learner should read "not implemented yet", not the symptom.
 */
const suite = {
  test(name: string, fn: (t: Grader) => Promise<void>, options?: { timeoutMs?: number }) {
    lessonNine.test(name, async (t) => {
      try {
        await fn(t);
      } catch (error) {
        const reason: unknown = t.signal.aborted ? t.signal.reason : undefined;
        if (isGradeFailure(reason) && reason.details.kind === "todo") throw reason;
        throw error;
      }
    }, options);
  },
};
type Lib = typeof Lesson;
const load = (t: Grader) => t.load<Lib>();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What the grader needs of any of your servers. */
type Server = Pick<
  Lesson.BaseServer<unknown>,
  "serveForever" | "shutdown" | "close" | "addr" | "handleError"
>;

/**
 * A TodoError thrown inside a handler (your BroadcastHandler, say) reaches
 * handleError and would only be logged: report it as "not implemented yet".
 */
function surfaceTodos<S extends Server>(t: Grader, server: S): S {
  const original = server.handleError;
  server.handleError = function (error, request, clientAddress) {
    if (isTodoError(error)) t.abort(error);
    try {
      return original.call(this, error, request, clientAddress);
    } catch (hookError) {
      // Your own handleError may still be a starter stub.
      if (isTodoError(hookError)) t.abort(hookError);
      throw hookError;
    }
  };
  return server;
}

/**
 * Handler events in the order they happened, with clients named by the grader.
 * Events are keyed by the client's port and named when shown, so a handler may
 * start before the grader has named its client.
 */
class Journal {
  readonly #entries: { event: string; key: string }[] = [];
  readonly #names = new Map<string, string>();

  /** Called by handlers: `record("setup", this.clientAddress)`. */
  record(event: string, client: Deno.Addr): void {
    this.#entries.push({ event, key: keyOf(client) });
  }

  /** A grader event, e.g. "shutdown resolved". */
  note(event: string): void {
    this.#entries.push({ event, key: "" });
  }

  /** Names the client behind a probe. */
  name(probe: Probe, name: string): void {
    this.#names.set(keyOf(probe.conn.localAddr), name);
  }

  /** The events of named clients and of the grader, as `"setup A"`. */
  list(): string[] {
    return this.#entries.flatMap(({ event, key }) => {
      if (key === "") return [event];
      const name = this.#names.get(key);
      return name ? [`${event} ${name}`] : [];
    });
  }

  /** Every event, clients named by the grader or else by their key (port or transport). */
  all(): string[] {
    return this.#entries.map(({ event, key }) =>
      key === "" ? event : `${event} ${this.#names.get(key) ?? key}`
    );
  }

  has(event: string): boolean {
    return this.list().includes(event);
  }
}

function keyOf(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp" ? String(addr.port) : addr.transport;
}

/** Writes all of `text` to a connection (the grader's handlers do not use your helpers). */
async function writeText(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/**
 * The grader's line-echo handler, built on your BaseRequestHandler: it records
 * setup/handle/finish, echoes each line, throws on the line `throw`, and keeps
 * the request open until the client ends its stream.
 */
function recorderClass(lib: Lib, journal: Journal) {
  return class Recorder extends lib.BaseRequestHandler<Deno.Conn> {
    override setup(): void {
      journal.record("setup", this.clientAddress);
    }

    override async handle(): Promise<void> {
      journal.record("handle", this.clientAddress);
      const buffer = new Uint8Array(1024);
      let pending = "";
      while (true) {
        const n = await this.request.read(buffer);
        if (n === null) return;
        pending += decoder.decode(buffer.subarray(0, n), { stream: true });
        for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
          const line = pending.slice(0, end + 1);
          pending = pending.slice(end + 1);
          if (line === "throw\n") throw new Error(`thrown on purpose by the grader's handler`);
          await writeText(this.request, line);
        }
      }
    }

    override finish(): void {
      journal.record("finish", this.clientAddress);
    }
  };
}

/** One of your servers, running `serveForever()` under the grader's watch. */
interface Served<S extends Server> {
  server: S;
  serving: Promise<void>;
  /** Calls `shutdown()` as the check expects it (serveForever may return from now on). */
  shutdown(options: { deadlineMs?: number }): Promise<Lesson.ShutdownReport>;
}

/** Shuts a server down after a check, whatever state it is in; failures here are not graded. */
async function cleanUp(server: Server, serving?: Promise<void>): Promise<void> {
  try {
    await server.shutdown({ deadlineMs: 200 });
  } catch {
    // Graded by the check itself.
  }
  try {
    server.close();
  } catch {
    // Idem.
  }
  await serving?.catch(() => {});
}

/**
 * Creates a server, starts `serveForever()` and watches it: if it rejects or
 * returns before shutdown, the check fails at once with the reason.
 */
async function serve<S extends Server>(
  t: Grader,
  label: string,
  make: () => S,
): Promise<Served<S>> {
  const server = surfaceTodos(t, await t.step(`create the ${label}`, make));
  const state = { ending: false };
  const serving = server.serveForever();
  t.defer(() => {
    state.ending = true;
    return cleanUp(server, serving);
  });
  serving.then(
    () => {
      if (state.ending) return;
      t.abort(
        new GradeFailure({
          kind: "mismatch",
          step: `${label}.serveForever()`,
          expected: "serveForever() to keep serving until shutdown() or close()",
          actual: "it returned while the server was still meant to serve",
        }),
      );
    },
    (error) => {
      t.abort(
        isTodoError(error) ? error : new GradeFailure({
          kind: "threw",
          step: `${label}.serveForever()`,
          expected: "serveForever() to keep serving: one failing request must not stop it",
          actual: `it rejected with ${describeError(error)}`,
          note: "runRequest's task must never reject: catch the handler's error, pass it to " +
            "handleError (guarding against the hook throwing too), and close the request in finally",
        }),
      );
    },
  );
  // One turn of the event loop for serveForever() to fail at once (a TodoError, a crash).
  await t.step(`start ${label}.serveForever()`, () => waitFor(serving, { timeoutMs: 0 }));
  return {
    server,
    serving,
    shutdown(options) {
      state.ending = true;
      t.transcript.record("grader", "note", {
        detail: `calls shutdown(${JSON.stringify(options)})`,
      });
      return server.shutdown(options);
    },
  };
}

/** One of your TCP servers, serving with the grader's Recorder into a new journal. */
async function serveRecorder(t: Grader, kind: "TcpServer" | "ConcurrentTcpServer") {
  const lib = await load(t);
  const journal = new Journal();
  const served = await serve(
    t,
    kind,
    () => new lib[kind]({ port: 0 }, recorderClass(lib, journal)),
  );
  return { lib, journal, served };
}

/** Connects and names the client in the journal. */
async function client(t: Grader, addr: Deno.Addr, name: string, journal?: Journal) {
  const probe = await t.connect(addr, name);
  journal?.name(probe, name);
  return probe;
}

/** Sends a line and expects it back: the handler of this client is running. */
async function echo(
  probe: Probe,
  line: string,
  options: { step?: string; note?: string } = {},
): Promise<void> {
  await probe.send(line, { note: options.note });
  await probe.expect(line, {
    step: options.step ?? `${probe.label} sends ${JSON.stringify(line)}, gets it back`,
    note: options.note,
  });
}

/** Ends a client's stream and waits for the server to close its side. */
async function hangUp(probe: Probe): Promise<void> {
  await probe.closeWrite();
  await probe.expectEnd({
    step: `${probe.label} ends its stream; the server closes the connection after finish()`,
  });
}

/** Serves a journal's ordering failure with the events shown. */
function expectEvents(t: Grader, journal: Journal, expected: string[], step: string, note: string) {
  t.expectEqual(journal.list(), expected, step, note);
}

// ─── the handler contract ────────────────────────────────────────────────────

suite.test("BaseRequestHandler.run: setup, handle, finish in order; finish even when handle throws", async (t) => {
  const lib = await load(t);
  const events: string[] = [];
  const failures = new Map<string, Error>();
  const clientAddress: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 4000 };
  const server = {} as Lesson.BaseServer<string>;
  class Steps extends lib.BaseRequestHandler<string> {
    async #part(name: string): Promise<void> {
      events.push(name);
      await nextTurn();
      events.push(`${name} done`);
      if (this.request === `${name} throws`) {
        const error = new Error(`${name}() failed on purpose`);
        failures.set(name, error);
        throw error;
      }
    }
    override setup() {
      return this.#part("setup");
    }
    override handle() {
      return this.#part("handle");
    }
    override finish() {
      return this.#part("finish");
    }
  }
  const all = ["setup", "setup done", "handle", "handle done", "finish", "finish done"];

  await t.step(
    "run() of a handler whose parts all succeed",
    () => new Steps("fine", clientAddress, server).run(),
  );
  t.expectEqual(
    events.splice(0),
    all,
    "the calls run() made",
    "await each part before starting the next: setup(), then handle(), then finish()",
  );

  const error = await t.expectError(
    "run() of a handler whose handle() throws",
    () => new Steps("handle throws", clientAddress, server).run(),
    { what: "run() to reject with handle()'s error once finish() has run" },
  );
  t.expectEqual(
    events.splice(0),
    all,
    "the calls run() made when handle() threw",
    "finish() must run even when handle() throws: try { await this.handle() } finally { await this.finish() }",
  );
  t.check(error === failures.get("handle"), {
    step: "the error run() rejected with",
    expected: "handle()'s own error, so the server can report it",
    actual: describeError(error),
  });

  await t.expectError(
    "run() of a handler whose setup() throws",
    () => new Steps("setup throws", clientAddress, server).run(),
    { what: "run() to reject with setup()'s error" },
  );
  t.expectEqual(
    events.splice(0),
    ["setup", "setup done"],
    "the calls run() made when setup() threw",
    "a request whose setup failed is not served and has nothing to undo: skip handle() and finish()",
  );
});

suite.test("handleRequest serves one request; the handler gets the connection, the client's address and the server", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  const seen: { request: Deno.Conn; clientAddress: Deno.Addr; server: unknown }[] = [];
  class Witness extends recorderClass(lib, journal) {
    override setup(): void {
      seen.push({ request: this.request, clientAddress: this.clientAddress, server: this.server });
      super.setup();
    }
  }
  const server = await t.step(
    "new TcpServer({ port: 0 }, handler)",
    () => new lib.TcpServer({ port: 0 }, Witness),
  );
  surfaceTodos(t, server);
  t.defer(() => cleanUp(server));
  const one = server.handleRequest();
  one.catch((error) =>
    t.abort(
      isTodoError(error) ? error : new GradeFailure({
        kind: "threw",
        step: "handleRequest()",
        expected: "handleRequest() to serve the request and resolve true",
        actual: `it rejected with ${describeError(error)}`,
      }),
    )
  );
  await t.step("handleRequest() waits for a client", () => waitFor(one, { timeoutMs: 0 }));

  const a = await client(t, server.addr, "A", journal);
  await echo(a, "just one request\n");
  await hangUp(a);
  const more = await t.step("handleRequest() resolves once A's request is over", () => one);
  t.expectEqual(more, true, "what handleRequest() resolved", "true: the server can take another");
  expectEvents(
    t,
    journal,
    ["setup A", "handle A", "finish A"],
    "the handler's calls",
    "handleRequest gets one request and runs it to the end",
  );

  const port = (a.conn.localAddr as Deno.NetAddr).port;
  const got = seen[0];
  t.check(
    got.clientAddress.transport === "tcp" && got.clientAddress.port === port &&
      got.clientAddress.hostname === "127.0.0.1",
    {
      step: "the handler's clientAddress",
      expected: `A's address, 127.0.0.1:${port}`,
      actual: inspect(got.clientAddress),
    },
  );
  t.check(got.request.remoteAddr.transport === "tcp" && got.request.remoteAddr.port === port, {
    step: "the handler's request",
    expected: "the accepted connection of A (a Deno.Conn whose remoteAddr is A's address)",
    actual: inspect(got.request?.remoteAddr ?? got.request),
  });
  t.check(got.server === server, {
    step: "the handler's server",
    expected: "the server that accepted the request",
    actual: inspect(got.server, { depth: 0 }),
  });

  server.close();
  const after = await t.step("handleRequest() after close()", () => server.handleRequest());
  t.expectEqual(
    after,
    false,
    "what handleRequest() resolved after close()",
    "false: nothing more to serve",
  );
});

// ─── serial, errors, concurrency ─────────────────────────────────────────────

suite.test("TcpServer serves requests strictly one after another", async (t) => {
  const { journal, served } = await serveRecorder(t, "TcpServer");
  const addr = served.server.addr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n");
  const b = await client(t, addr, "B", journal);
  await b.send("b1\n");
  const c = await client(t, addr, "C", journal);
  await c.send("c1\n");
  await echo(a, "a2\n", { step: "A is still being served while B and C wait" });
  expectEvents(
    t,
    journal,
    ["setup A", "handle A"],
    "handler events while A's request is open",
    "a serial server handles one request at a time: B and C wait, connected, until A's handler has finished",
  );
  await hangUp(a);
  await b.expect("b1\n", {
    step: "B's line comes back after A is done",
    note: "once A's request is over, the serial server must accept the next client (B)",
  });
  await hangUp(b);
  await c.expect("c1\n", { step: "C's line comes back after B is done" });
  await hangUp(c);
  expectEvents(
    t,
    journal,
    [
      ...["setup A", "handle A", "finish A"],
      ...["setup B", "handle B", "finish B"],
      ...["setup C", "handle C", "finish C"],
    ],
    "the order of all handler events",
    "each request runs setup → handle → finish to the end before the next one is accepted",
  );
  const report = await t.step("shutdown() of the idle server", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
});

suite.test("a failing handler is logged through LogTape and the next request is served", async (t) => {
  const records = await captureLogs(t);
  const { journal, served } = await serveRecorder(t, "TcpServer");
  const a = await client(t, served.server.addr, "A", journal);
  await a.send("throw\n");
  await a.expectEnd({ step: "A's handler throws; the server closes A's connection" });
  const port = (a.conn.localAddr as Deno.NetAddr).port;
  const b = await client(t, served.server.addr, "B", journal);
  await echo(b, "still serving?\n", {
    note: "one request's error must not stop the server: the next client must be served",
  });
  await hangUp(b);
  expectEvents(
    t,
    journal,
    ["setup A", "handle A", "finish A", "setup B", "handle B", "finish B"],
    "the handler events",
    "finish() runs for A although its handle() threw; then B is served",
  );
  const logged = records.filter((r) =>
    (r.level === "error" || r.level === "fatal") &&
    inspect([r.message, r.properties]).includes("thrown on purpose by the grader's handler")
  );
  t.check(logged.length > 0, {
    step: "the log records written while A's handler failed",
    expected: "a LogTape record at level error that carries the handler's error",
    actual: records.length === 0
      ? "no log records at all"
      : records.map((r) => `${r.level} ${r.category.join("·")}: ${inspect(r.message)}`).join(
        "\n          ",
      ),
    note: "the default handleError logs with the logger from programLogger(...): " +
      'log.error("… {client} … {error}", { client, error })',
  });
  t.check(inspect([logged[0].message, logged[0].properties]).includes(`:${port}`), {
    step: "the error record names the client",
    expected: `the client's address, 127.0.0.1:${port}`,
    actual: inspect(logged[0].message),
  });
});

suite.test("handleError is a hook: a subclass sees each failure, even when the hook itself throws", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  const failures: { error: unknown; request: Deno.Conn; clientAddress: Deno.Addr }[] = [];
  class Watched extends lib.TcpServer {
    override handleError(error: unknown, request: Deno.Conn, clientAddress: Deno.Addr): void {
      failures.push({ error, request, clientAddress });
      throw new Error("the handleError hook failed too (on purpose)");
    }
  }
  const served = await serve(
    t,
    "TcpServer subclass",
    () => new Watched({ port: 0 }, recorderClass(lib, journal)),
  );
  const a = await client(t, served.server.addr, "A", journal);
  await a.send("throw\n");
  await a.expectEnd({ step: "A's handler throws; the server closes A's connection" });
  const port = (a.conn.localAddr as Deno.NetAddr).port;
  t.check(failures.length === 1, {
    step: "calls of the subclass's handleError",
    expected: "one call, for A's failure",
    actual: `${failures.length} call(s)`,
    note: "runRequest passes a handler's error to this.handleError(error, request, clientAddress)",
  });
  const [failure] = failures;
  t.check(
    failure.error instanceof Error && failure.error.message.includes("grader's handler"),
    {
      step: "the error handleError got",
      expected: "the error the handler threw",
      actual: describeError(failure.error),
    },
  );
  t.check(
    failure.clientAddress.transport === "tcp" && failure.clientAddress.port === port &&
      failure.request.remoteAddr.transport === "tcp" && failure.request.remoteAddr.port === port,
    {
      step: "the request and address handleError got",
      expected: `A's connection and address (port ${port})`,
      actual: `${inspect(failure.clientAddress)} / ${inspect(failure.request?.remoteAddr)}`,
    },
  );
  const b = await client(t, served.server.addr, "B", journal);
  await echo(b, "after two failures\n", {
    note: "a handleError hook that throws must not stop the server either: guard the call",
  });
  await hangUp(b);
});

suite.test("ConcurrentTcpServer overlaps two slow requests", async (t) => {
  const { journal, served } = await serveRecorder(t, "ConcurrentTcpServer");
  const addr = served.server.addr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n", { step: "A's handler is running (the grader keeps A open)" });
  const b = await client(t, addr, "B", journal);
  await echo(b, "b1\n", {
    step: "B gets its line back while A's request is still open",
    note: "a concurrent server starts a task per connection and goes straight back to accept(); " +
      "yours waited for A's handler to end (processRequest must not await the task)",
  });
  await hangUp(b);
  await echo(a, "a2\n", { step: "A is still served after B has come and gone" });
  await hangUp(a);
  expectEvents(
    t,
    journal,
    ["setup A", "handle A", "setup B", "handle B", "finish B", "finish A"],
    "the order of the handler events",
    "B's whole request ran while A's was open",
  );
  const report = await t.step("shutdown() of the idle server", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
});

/** An error no client and no closed listener explains: a broken server, as far as the loop knows. */
class GraderFault extends Error {
  override name = "GraderFault";
}

suite.test("handleRequest sorts getRequest's failures: a client's goes on, a closed endpoint ends, anything else rejects", async (t) => {
  const lib = await load(t);
  const failures: Error[] = [];
  /** A TcpServer whose getRequest() fails with the grader's errors, one per call. */
  class Failing extends lib.TcpServer {
    protected override getRequest(): Promise<Lesson.Incoming<Deno.Conn>> {
      const next = failures.shift();
      return next ? Promise.reject(next) : super.getRequest();
    }
  }
  const server = await t.step(
    "new TcpServer subclass({ port: 0 }) whose getRequest() fails",
    () => new Failing({ port: 0 }, lib.BaseRequestHandler<Deno.Conn>),
  );
  surfaceTodos(t, server);
  t.defer(() => cleanUp(server));
  const cases: [Error, boolean | "rejects", string][] = [
    [new Deno.errors.ConnectionReset("a client reset before it was accepted"), true, "go on"],
    [new Deno.errors.NotConnected("a client reset in the queue"), true, "go on"],
    [new GraderFault("getRequest itself is broken"), "rejects", "a server failure"],
    [new Deno.errors.BadResource("the listener is closed"), false, "done"],
    [new Deno.errors.Interrupted("the pending accept was cancelled"), false, "done"],
  ];
  for (const [error, expected, meaning] of cases) {
    failures.push(error);
    const step = `handleRequest() when getRequest() rejects with ${error.name}`;
    if (expected === "rejects") {
      await t.expectError(step, () => server.handleRequest(), {
        name: "GraderFault",
        what: "the same error: the server itself is broken",
        note: "only a client's own error (isClientError) is logged and skipped, and only a " +
          "closed endpoint (BadResource, Interrupted) ends the loop; rethrow anything else",
      });
    } else {
      const got = await t.step(step, () => server.handleRequest());
      t.expectEqual(
        got,
        expected,
        `what ${step} resolved`,
        `${error.name} means ${meaning}: ${expected ? "true" : "false"}`,
      );
    }
  }
});

const BACKOFF_NOTE = "out of descriptors, accept() fails (EMFILE) while the client stays queued " +
  "in the kernel: asking again at once only spins and floods the log, and rethrowing kills the " +
  "server. When isOutOfDescriptors(error), await this.pause(ms) and resolve true: 10 ms first, " +
  "doubling each time up to 1000 ms; once getRequest() works again, the next episode starts " +
  "at 10 ms again";

const LOG_ONCE_NOTE = "log one warning when the loop runs out of descriptors, not one line per " +
  "failed attempt: log at the first failure of the episode only (no pause taken yet). Once " +
  "getRequest() works again the episode is over, so the next one gets its own warning";

suite.test("out of descriptors, handleRequest pauses (10 ms, doubling to 1 s), warns once per episode, and recovers", async (t) => {
  const lib = await load(t);
  const records = await captureLogs(t);
  const loud = () => records.filter((r) => r.level !== "debug");
  const journal = new Journal();
  const state = { failing: 0, requests: 0, episodeStart: 0 };
  // Each pause notes the getRequest() calls and the log lines (info or above) so far.
  const pauses = recordPauses(t, {
    snapshot: () => ({ requests: state.requests, logged: loud().length }),
    caller: "this.pause",
  });
  const { calls } = pauses;
  /** getRequest() calls made while this pause was still running (0: it waited). */
  const requestsDuring = (call: (typeof calls)[number]) =>
    call.after ? call.after.requests - call.before.requests : 0;
  /** A TcpServer whose getRequest() fails like accept() out of descriptors, while told to. */
  class Starved extends lib.TcpServer {
    protected override async getRequest(): Promise<Lesson.Incoming<Deno.Conn>> {
      state.requests++;
      if (state.failing > 0) {
        state.failing--;
        await nextTurn();
        throw new Error("Too many open files (os error 24)");
      }
      return await super.getRequest();
    }
    protected override pause(ms: number): Promise<void> {
      return pauses.pause(ms);
    }
  }
  const begin = (failures: number) => {
    calls.length = 0;
    state.episodeStart = loud().length;
    state.failing = failures;
    t.transcript.record("grader", "note", {
      detail: `the next ${failures} getRequest() calls fail: Too many open files (os error 24)`,
    });
  };
  const judge = (failures: number, which: string) => {
    // Log records (info or above) from the episode's start to the end of its last pause.
    const last = calls.at(-1)?.after;
    const during = last ? last.logged - state.episodeStart : 0;
    judgeBackoffEpisode(t, {
      calls,
      failures,
      which,
      failing: "getRequest()",
      pause: "this.pause",
      callsDuring: requestsDuring,
      callsMade: () => `getRequest() was called ${state.requests} time(s) in all`,
      awaitAdvice: "await the pause before handleRequest resolves",
      logged: loud().slice(state.episodeStart, state.episodeStart + during),
      backoffNote: BACKOFF_NOTE,
      logOnceNote: LOG_ONCE_NOTE,
    });
  };
  begin(8);
  const served = await serve(
    t,
    "TcpServer subclass whose getRequest() runs out of descriptors",
    () => new Starved({ port: 0 }, recorderClass(lib, journal)),
  );
  const a = await client(t, served.server.addr, "A", journal);
  await echo(a, "a waits out the shortage\n", {
    step: "A's line comes back after 8 EMFILE failures",
    note: "out of descriptors is not the end of the server: pause, resolve true, and serve the " +
      "client that waited in the queue once getRequest() works again",
  });
  judge(8, "first");
  begin(2); // the serial server asks for its next request once A is done
  await hangUp(a);
  const b = await client(t, served.server.addr, "B", journal);
  await echo(b, "b after the second shortage\n", {
    step: "B's line comes back after 2 more failures",
  });
  judge(2, "second");
  await hangUp(b);
});

suite.test("a client that resets while queued does not stop TcpServer", async (t) => {
  const { journal, served } = await serveRecorder(t, "TcpServer");
  const addr = served.server.addr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a is served\n");
  // R connects while A is served (it waits in the queue) and resets there; B queues after it.
  await t.reset(addr, "R", "hello\n");
  const b = await client(t, addr, "B", journal);
  await b.send("b after R\n");
  await hangUp(a);
  await b.expect("b after R\n", {
    step: "B's line comes back, after R reset in the queue",
    note:
      "accept() throws NotConnected for a client that reset while it waited in the queue: that is " +
      "a client's error (isClientError), to log and go on — the server must not stop",
  });
  await hangUp(b);
});

suite.test("a client that resets while queued does not stop the BroadcastServer", async (t) => {
  const lib = await load(t);
  // The grader keeps the server's accept() from reaching the kernel while R connects and resets.
  const { value: server, gate } = await t.step(
    "new BroadcastServer({ port: 0 })",
    () => gateListen(() => new lib.BroadcastServer({ port: 0 }), "paused"),
  );
  surfaceTodos(t, server);
  const state = { ending: false };
  const serving = server.serveForever();
  serving.catch(() => {}); // looked at below
  t.defer(() => {
    state.ending = true;
    return cleanUp(server, serving);
  });
  t.defer(() => gate.open()); // runs first
  await t.step(
    "serveForever() calls accept()",
    () => whileRunning(serving, () => gate.until(() => gate.waiting === 1, "accept() is called")),
  );
  await t.reset(server.addr, "R", "hello\n");
  const b = await client(t, server.addr, "B");
  gate.open(); // accept() meets R first: it throws NotConnected
  let stopped: string | undefined;
  serving.then(
    () => stopped = "serveForever() returned",
    (error) => stopped = `serveForever() rejected with ${describeError(error)}`,
  );
  const keepGoing = "accept() throws NotConnected for a client that reset while it waited in " +
    "the queue: a client's error (isClientError), to log and go on — the server must not stop";
  await t.eventually(
    "B joins after R reset in the queue",
    () => server.clients.size === 1 || stopped !== undefined,
    {
      expected: "server.clients.size to be 1 (B)",
      actual: () => `it is ${server.clients.size}`,
      note: keepGoing,
    },
  );
  if (stopped !== undefined) {
    t.fail({
      step: "the server after R reset in the queue",
      expected: "to go on serving (B joins)",
      actual: stopped,
      note: keepGoing,
    });
  }
  await b.send("b is here\n");
  await b.expect("b is here\n", { step: "B's line is broadcast back to B" });
});

suite.test("a request accepted as shutdown() began is closed unhandled", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  // The grader holds the connection the server's accept() got, and hands it over only once
  // shutdown() has begun.
  const { value: server, gate } = await t.step(
    "new ConcurrentTcpServer({ port: 0 }, handler)",
    () =>
      gateListen(
        () => new lib.ConcurrentTcpServer({ port: 0 }, recorderClass(lib, journal)),
        "holding",
      ),
  );
  surfaceTodos(t, server);
  t.defer(() => cleanUp(server));
  t.defer(() => gate.open()); // runs first: nothing stays held
  let answer: string | undefined;
  const handling = server.handleRequest();
  const one = handling.then(
    (more) => answer = String(more),
    (error) => answer = `a rejection: ${describeError(error)}`,
  );
  const x = await client(t, server.addr, "X", journal);
  await t.step(
    "handleRequest(): the server's accept() has X",
    () => whileRunning(handling, () => gate.until(() => gate.held === 1, "X is accepted")),
  );
  t.transcript.record("grader", "note", { detail: "calls shutdown({ deadlineMs: 2000 })" });
  const stopping = server.shutdown({ deadlineMs: 2000 });
  stopping.catch(() => {}); // awaited below
  gate.open(); // getRequest() now returns X, to a server that is stopping
  await t.step("handleRequest() with X accepted as shutdown() began", () => one);
  t.expectEqual(
    answer,
    "false",
    "what handleRequest() resolved with X accepted as shutdown() began",
    "a request that arrives once the server is stopping is closed unhandled (closeRequest), " +
      "and handleRequest resolves false: the server is done",
  );
  await x.expectEnd({
    step: "X, accepted as shutdown() began, is closed",
    note: "a request that arrives once the server is stopping is closed unhandled (closeRequest)",
  });
  t.expectEqual(
    journal.list().filter((event) => event.endsWith(" X")),
    [],
    "X's handler events",
    "X arrived once the server was stopping: it must not be handled (no setup, no handle)",
  );
  const report = await t.step("shutdown() resolves", () => stopping);
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
});

suite.test("inFlight counts the requests being handled, and goes back to 0", async (t) => {
  const { journal, served } = await serveRecorder(t, "ConcurrentTcpServer");
  const server = served.server;
  const expectInFlight = (n: number, why: string) =>
    t.eventually(`${why}: inFlight becomes ${n}`, () => server.inFlight === n, {
      expected: `server.inFlight to be ${n}`,
      actual: () => `it is ${server.inFlight}`,
      note: "runRequest puts its task in the in-flight map before it returns and takes it out " +
        "when it settles (task.then(() => map.delete(task)))",
    });
  const a = await client(t, server.addr, "A", journal);
  await echo(a, "a1\n");
  const b = await client(t, server.addr, "B", journal);
  await echo(b, "b1\n");
  await expectInFlight(2, "A and B are being served");
  await hangUp(b);
  await expectInFlight(1, "B has left, A is still served");
  await hangUp(a);
  await expectInFlight(0, "A has left too");
  for (const name of ["C", "D", "E"]) {
    const probe = await client(t, server.addr, name, journal);
    await echo(probe, `${name} comes and goes\n`);
    await hangUp(probe);
  }
  await expectInFlight(0, "three more clients came and went, one after another");
});

// ─── shutdown ────────────────────────────────────────────────────────────────

/** Connects until refused: shutdown() may close the listener a moment after it is called. */
async function expectRefused(t: Grader, addr: Deno.NetAddr): Promise<void> {
  const step = "a new client connects after shutdown() began";
  const deadline = runDeadline(STEP_MS);
  try {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await Deno.connect({ hostname: addr.hostname, port: addr.port });
      } catch (error) {
        // Refused, or reset by a listener closing under the handshake: either way, not accepted.
        if (
          error instanceof Deno.errors.ConnectionRefused ||
          error instanceof Deno.errors.ConnectionReset
        ) {
          t.transcript.record("late client", "note", { detail: `${error.name}, as it should be` });
          return;
        }
        t.fail({ step, expected: "ConnectionRefused", actual: describeError(error) });
      }
      conn.close();
      if (deadline.passed()) {
        t.fail({
          step,
          expected: "the connection to be refused: a stopping server accepts no one",
          actual: `it was still accepted ${STEP_MS} ms after shutdown() was called`,
          note: "shutdown() first stops accepting: stopAccepting() closes the listener",
        });
      }
      await nextTurn(10);
    }
  } finally {
    deadline.done();
  }
}

suite.test("shutdown lets the request in flight finish, refuses new clients, reports drained", async (t) => {
  const { journal, served } = await serveRecorder(t, "ConcurrentTcpServer");
  const addr = served.server.addr as Deno.NetAddr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n", { step: "A's request is in flight" });
  const stopping = served.shutdown({ deadlineMs: 4000 });
  stopping.then(() => journal.note("shutdown resolved"), () => {});
  await t.step(
    "shutdown({ deadlineMs: 4000 }) begins while A is in flight",
    () => waitFor(stopping, { timeoutMs: 0 }),
  );
  await expectRefused(t, addr);
  await echo(a, "a2\n", {
    step: "A is still served while shutdown() waits for it",
    note: "before its deadline, shutdown() waits: requests in flight go on being served",
  });
  await hangUp(a);
  const report = await t.step("shutdown() resolves once A is done", () => stopping);
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  expectEvents(
    t,
    journal,
    ["setup A", "handle A", "finish A", "shutdown resolved"],
    "handler events and shutdown, in order",
    "shutdown() resolves only once every request in flight has finished (or the deadline passed)",
  );
  await t.step("serveForever() returns after shutdown()", () => served.serving);
});

suite.test("shutdown() without options marks the server stopping and waits for the request in flight", async (t) => {
  const { lib, journal, served } = await serveRecorder(t, "ConcurrentTcpServer");
  const a = await client(t, served.server.addr, "A", journal);
  await echo(a, "a1\n", { step: "A's request is in flight" });
  const stopping = served.shutdown({});
  await t.step("shutdown() without options begins", () => waitFor(stopping, { timeoutMs: 0 }));
  t.check(served.server.stopping, {
    step: "server.stopping once shutdown() has begun",
    expected: "true",
    actual: String(served.server.stopping),
    note: "shutdown() first marks the server stopping, then stops accepting",
  });
  await echo(a, "a2\n", {
    step: "A is still served while shutdown() without options waits",
    note:
      `without options, shutdown() waits up to DEFAULT_SHUTDOWN_MS (${lib.DEFAULT_SHUTDOWN_MS} ms) ` +
      "for the requests in flight: options.deadlineMs ?? DEFAULT_SHUTDOWN_MS",
  });
  await hangUp(a);
  const report = await t.step("shutdown() resolves once A is done", () => stopping);
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
});

for (const kind of ["TcpServer", "ConcurrentTcpServer"] as const) {
  suite.test(`shutdown with a short deadline cuts a stuck request and still resolves (${kind})`, async (t) => {
    const { journal, served } = await serveRecorder(t, kind);
    const names = kind === "TcpServer" ? ["A"] : ["A", "B"];
    const stuck: Probe[] = [];
    for (const name of names) {
      const probe = await client(t, served.server.addr, name, journal);
      await echo(probe, `${name} never finishes\n`, {
        step: `${name}'s request is in flight (and never ends)`,
      });
      stuck.push(probe);
    }
    const report = await t.step(
      "shutdown({ deadlineMs: 100 }) while the handlers wait for bytes that never come",
      () => served.shutdown({ deadlineMs: 100 }).finally(() => journal.note("shutdown resolved")),
      {
        // The deadline, the wait for what it cut, then a step.
        timeoutMs: 2 * 100 + STEP_MS,
        note:
          "after the deadline shutdown() closes the requests still running and stops waiting: " +
          "it must resolve even when a handler would never end",
      },
    );
    t.expectEqual(
      report,
      { outcome: "cut", cut: names.length },
      "shutdown()'s report",
      "the deadline passed with requests still running: say so, and how many were cut",
    );
    for (const probe of stuck) {
      await probe.expectEnd({ step: `${probe.label}'s connection is closed by the cut` });
    }
    const events = journal.list();
    for (const name of names) {
      const finished = events.indexOf(`finish ${name}`);
      t.check(finished >= 0 && finished < events.indexOf("shutdown resolved"), {
        step: `finish() runs for ${name}, cut off at the deadline, before shutdown() resolves`,
        expected: `the event "finish ${name}" before "shutdown resolved"`,
        actual: inspect(events),
        note: "a cut request's read fails and run()'s finally calls finish(); after cutting, " +
          "shutdown() waits (up to deadlineMs more) for the cut tasks to settle before it resolves",
      });
    }
    await t.step("serveForever() returns after shutdown()", () => served.serving);
  });
}

/** Records as the `actual:` of a failure, with their categories. */
function showRecords(records: LogRecord[]): string {
  return records.length === 0
    ? "no log records at all"
    : records.map((r) => `${r.level} ${r.category.join("·")}: ${logText(r)}`).join(
      "\n          ",
    );
}

suite.test("handleError logs a client that vanished and a request cut by shutdown as warnings", async (t) => {
  const records = await captureLogs(t);
  const { journal, served } = await serveRecorder(t, "TcpServer");
  const note = "the default handleError logs at level warning (not error) when the connection " +
    "was lost (isClientError) or cut off by shutdown (Interrupted or BadResource while stopping)";
  const expectWarningOnly = (step: string, port: number) => {
    const errors = records.filter((r) => r.level === "error" || r.level === "fatal");
    const warnings = records.filter((r) =>
      r.level === "warning" && inspect([r.message, r.properties]).includes(`:${port}`)
    );
    t.check(errors.length === 0 && warnings.length > 0, {
      step,
      expected: `a record at level warning naming 127.0.0.1:${port}, and none at level error`,
      actual: showRecords(records),
      note,
    });
    // "With just the error's text": a warning carries no error object (a sink would print its stack).
    const objects = warnings.flatMap((r) =>
      Object.entries(r.properties).filter(([, value]) =>
        (typeof value === "object" && value !== null) || typeof value === "function" ||
        (typeof value === "string" && value.includes("\n"))
      )
    );
    t.check(objects.length === 0, {
      step: `${step}: the values of the warning`,
      expected: "one line of text: every value of the record a string, number or boolean",
      actual: objects.map(([key, value]) =>
        `${key}: ${
          value instanceof Error
            ? `the error object (${value.name}: ${value.message})`
            : inspect(value, { depth: 0 })
        }`
      ).join(", "),
      note: "an expected ending is logged with just the error's text (String(error) or its " +
        "message), not the error object: a sink prints an object's whole stack, and a warning " +
        "is one line",
    });
  };
  // R's handler is reading when R resets: its read fails with ConnectionReset.
  const r = await t.connect(served.server.addr, "R", { resettable: true });
  journal.name(r, "R");
  await echo(r, "r is served\n");
  const rPort = (r.conn.localAddr as Deno.NetAddr).port;
  await r.reset();
  await t.eventually("R's request ends after its reset", () => journal.has("finish R"), {
    expected: 'the event "finish R"',
    actual: () => inspect(journal.list()),
  });
  await ioTurns(); // handleError runs right after finish()
  expectWarningOnly("the log records after R reset while its handler read", rPort);
  // A's handler is reading when shutdown cuts it off.
  const a = await client(t, served.server.addr, "A", journal);
  await echo(a, "a never finishes\n");
  const aPort = (a.conn.localAddr as Deno.NetAddr).port;
  records.length = 0;
  const report = await t.step(
    "shutdown({ deadlineMs: 50 }) while A's handler waits for bytes",
    () => served.shutdown({ deadlineMs: 50 }),
    { timeoutMs: 2 * 50 + STEP_MS },
  );
  t.expectEqual(report, { outcome: "cut", cut: 1 }, "shutdown()'s report");
  expectWarningOnly("the log records after shutdown cut A's request", aPort);
});

suite.test("handleError logs a real failure as an error, also during shutdown", async (t) => {
  const lib = await load(t);
  const records = await captureLogs(t);
  const journal = new Journal();
  /** The grader's recorder, except that the line `close` makes it close its own connection first. */
  class SelfCloser extends recorderClass(lib, journal) {
    override async handle(): Promise<void> {
      const buffer = new Uint8Array(64);
      await this.request.read(buffer);
      // A bug of the handler's own: it closes its connection, then reads from it (BadResource).
      this.request.close();
      await this.request.read(buffer);
    }
  }
  const served = await serve(
    t,
    "ConcurrentTcpServer",
    () => new lib.ConcurrentTcpServer({ port: 0 }, SelfCloser),
  );
  const note = "only a lost client (isClientError) and a request cut by shutdown (Interrupted or " +
    "BadResource while the server is stopping) are warnings; any other failure is an error";
  const expectError = (step: string, port: number, detail: string) => {
    const errors = records.filter((r) =>
      r.level === "error" && inspect([r.message, r.properties]).includes(`:${port}`)
    );
    t.check(errors.length > 0, {
      step,
      expected: `a record at level error naming 127.0.0.1:${port} (${detail})`,
      actual: showRecords(records),
      note,
    });
  };
  const a = await client(t, served.server.addr, "A", journal);
  await a.send("go\n");
  await a.expectEnd({ step: "A's handler closes its own connection, then reads from it" });
  const aPort = (a.conn.localAddr as Deno.NetAddr).port;
  await t.eventually("handleError logs A's failure", () => records.length > 0, {
    expected: "a log record",
    actual: () => showRecords(records),
    note,
  });
  expectError(
    "the log record of A's failure",
    aPort,
    "BadResource while the server is not stopping is the handler's own bug",
  );
  // The same server goes on with the line-echo recorder.
  (served.server as { handlerClass: unknown }).handlerClass = recorderClass(lib, journal);
  const b = await client(t, served.server.addr, "B", journal);
  await echo(b, "b is in flight\n");
  const bPort = (b.conn.localAddr as Deno.NetAddr).port;
  records.length = 0;
  const stopping = served.shutdown({ deadlineMs: 2000 });
  await t.step("shutdown({ deadlineMs: 2000 }) begins", () => waitFor(stopping, { timeoutMs: 0 }));
  await b.send("throw\n");
  await b.expectEnd({ step: "B's handler throws while the server is stopping" });
  const report = await t.step("shutdown() resolves once B is done", () => stopping);
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  expectError(
    "the log record of B's failure during shutdown",
    bPort,
    "a handler that throws during shutdown is a real failure, not a cut",
  );
});

// ─── UDP and Unix ────────────────────────────────────────────────────────────

/** The grader's UDP socket: each datagram recorded, received in the background. */
class DatagramClient {
  readonly socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  readonly #t: Grader;
  readonly #label: string;
  readonly #queue: Uint8Array[] = [];
  /** Called on every arrival: the waits of `nextBytes`. */
  readonly #arrivals = new Set<() => void>();
  readonly #loop: Promise<void>;

  constructor(t: Grader, label: string) {
    this.#t = t;
    this.#label = label;
    this.#loop = this.#receive();
    t.defer(() => this.close());
  }

  get port(): number {
    return (this.socket.addr as Deno.NetAddr).port;
  }

  async #receive(): Promise<void> {
    while (true) {
      try {
        const [data] = await this.socket.receive();
        this.#t.transcript.record(this.#label, "received", { bytes: data });
        this.#queue.push(data);
        for (const wake of [...this.#arrivals]) wake();
      } catch {
        return; // closed
      }
    }
  }

  async send(text: string, to: Deno.Addr): Promise<void> {
    const bytes = encoder.encode(text);
    await this.socket.send(bytes, to);
    this.#t.transcript.record(this.#label, "sent", { bytes });
  }

  /** The next datagram, within a step. */
  async next(step: string): Promise<string> {
    return decoder.decode(await this.nextBytes(step));
  }

  /** The bytes of the next datagram, within a step. */
  async nextBytes(step: string): Promise<Uint8Array> {
    const waited = await waitUntil(() => this.#queue.shift(), {
      timeoutMs: STEP_MS,
      signal: this.#t.signal,
      wakeOn: this.#arrivals,
    });
    if (waited.status === "done") return waited.value;
    this.#t.throwIfInterrupted();
    this.#t.fail({
      step,
      expected: `a datagram within ${STEP_MS} ms`,
      actual: "none arrived",
      kind: "timeout",
    });
  }

  async close(): Promise<void> {
    try {
      this.socket.close();
    } catch {
      // Closed already.
    }
    await this.#loop;
  }
}

/** Bytes a handler replies with: not UTF-8, and with a 0 byte. */
const RAW_REPLY = Uint8Array.of(0xff, 0x00, 0x68, 0x69, 0xc3);

suite.test("UdpServer answers each datagram on its own and survives a failing handler", async (t) => {
  const lib = await load(t);
  const events: string[] = [];
  class Shout extends lib.BaseRequestHandler<Lesson.Datagram> {
    override async handle(): Promise<void> {
      const text = decoder.decode(this.request.data);
      const from = this.clientAddress.transport === "udp" ? this.clientAddress.port : "?";
      events.push(`${text} from ${from}`);
      if (text === "throw") throw new Error("thrown on purpose by the grader's UDP handler");
      if (text === "bytes") return await this.request.reply(RAW_REPLY);
      const size = this.request.data.length;
      if (size > 1000) return await this.request.reply(`${size} bytes`);
      await this.request.reply(text.toUpperCase());
    }
  }
  const served = await serve(t, "UdpServer", () => new lib.UdpServer({ port: 0 }, Shout));
  const addr = served.server.addr as Deno.NetAddr;
  const me = new DatagramClient(t, "udp client");
  await me.send("hello", addr);
  await me.send("world", addr);
  const first = await me.next('the reply to the datagram "hello"');
  const second = await me.next('the reply to the datagram "world"');
  t.expectEqual(
    [first, second],
    ["HELLO", "WORLD"],
    "the two replies",
    "one datagram is one request: its bytes are request.data, and reply() sends one datagram back",
  );
  t.expectEqual(
    events.splice(0),
    [`hello from ${me.port}`, `world from ${me.port}`],
    "what the handler saw",
    "the client address of a datagram is its sender's",
  );
  await me.send("throw", addr);
  await me.send("again", addr);
  const third = await t.noted(
    'the handler of "throw" failed; the server must go on and answer the next datagram',
    () => me.next('the reply to "again", sent after the datagram that made the handler throw'),
  );
  t.expectEqual(third, "AGAIN", "the reply after the failure");
  await me.send("bytes", addr);
  const raw = await me.nextBytes('the reply to "bytes": the handler calls reply(bytes)');
  t.expectEqual(
    raw,
    RAW_REPLY,
    "the datagram reply(bytes) sent",
    "reply() sends a Uint8Array as it is; only a string is encoded (as UTF-8)",
  );
  await me.send("d".repeat(60_000), addr);
  const size = await me.next(
    "the reply to a datagram of 60000 bytes (the handler replies with request.data's length)",
  );
  t.expectEqual(
    size,
    "60000 bytes",
    "the length of request.data the handler saw",
    "a request is the whole datagram: receive() without a buffer of your own takes one of " +
      "65,507 bytes, the largest UDP payload; a smaller buffer cuts longer datagrams silently",
  );
  const report = await t.step("shutdown() of the idle UDP server", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
  expectPortFree(t, addr.port, {
    step: `bind UDP port ${addr.port} again after shutdown()`,
    expected: "the port to be free: shutdown() closes the server's socket",
  });
});

/**
 * A UDP handler that holds its request until the grader lets it go, so a check
 * can act while it is in flight. `started` counts the requests it got.
 */
function heldUdpHandler(lib: Lib, t: Grader) {
  const state = { started: 0, release: () => {} };
  const released = new Promise<void>((resolve) => state.release = resolve);
  t.defer(() => state.release()); // never leave a handler hanging
  class Held extends lib.BaseRequestHandler<Lesson.Datagram> {
    override async handle(): Promise<void> {
      state.started++;
      await released;
      await this.request.reply("done");
    }
  }
  return { Held, state };
}

/** A UdpServer whose held handler is running on the datagram `text` of the grader's client. */
async function heldUdpRequest(t: Grader, text: string) {
  const lib = await load(t);
  const { Held, state } = heldUdpHandler(lib, t);
  const served = await serve(t, "UdpServer", () => new lib.UdpServer({ port: 0 }, Held));
  const addr = served.server.addr as Deno.NetAddr;
  const me = new DatagramClient(t, "udp client");
  await me.send(text, addr);
  await t.eventually("the handler of the datagram runs", () => state.started === 1, {
    expected: "the handler to start",
    actual: () => `${state.started} handler(s) started`,
  });
  return { served, addr, me, state };
}

/** Fails unless UDP port `port` can be bound: the server closed its socket. */
function expectPortFree(
  t: Grader,
  port: number,
  details: { step: string; expected: string; note?: string },
): void {
  let again: Deno.DatagramConn;
  try {
    again = Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" });
  } catch (error) {
    throw t.fail({ ...details, actual: describeError(error) });
  }
  again.close();
}

suite.test("UdpServer: while shutdown drains, handleRequest() says done at once, and the drain ends it", async (t) => {
  const { served, me, state } = await heldUdpRequest(t, "hold on");
  const stopping = served.shutdown({ deadlineMs: 2000 });
  stopping.catch(() => {}); // awaited below
  // The UDP socket stays open through the drain: a handleRequest() that went on to
  // getRequest() would wait for a datagram.
  let answer: string | undefined;
  const asked = served.server.handleRequest().then(
    (more) => answer = String(more),
    (error) => answer = `a rejection: ${describeError(error)}`,
  );
  await ioTurns();
  t.check(answer === "false", {
    step: "handleRequest() called while the UDP server is stopping",
    expected: "false, at once (the server is stopping)",
    actual: answer === undefined ? "still pending: it waits for a datagram" : answer,
    note: "handleRequest's first step: if the server is stopping, resolve false without " +
      "waiting. A UDP server keeps its socket open through the drain, so getRequest() would wait",
  });
  state.release();
  await asked;
  t.expectEqual(await me.next("the held handler's reply"), "done", "the held handler's reply");
  const report = await t.step("shutdown() resolves once the handler is done", () => stopping);
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
});

suite.test("UdpServer: shutdown past its deadline still closes the socket", async (t) => {
  const { served, addr, state } = await heldUdpRequest(t, "never done");
  const report = await t.step(
    "shutdown({ deadlineMs: 50 }) while a UDP handler never ends",
    () => served.shutdown({ deadlineMs: 50 }),
    {
      timeoutMs: 2 * 50 + STEP_MS,
      note:
        "after the deadline, cut what is left, wait up to deadlineMs more, then close() and resolve",
    },
  );
  t.expectEqual(report, { outcome: "cut", cut: 1 }, "shutdown()'s report");
  expectPortFree(t, addr.port, {
    step: `bind UDP port ${addr.port} again after shutdown() cut the request`,
    expected: "the port to be free: shutdown() closes the server's socket on every path",
    note: "call this.close() before resolving, after a cut as after a drain",
  });
  state.release();
});

suite.test("UnixStreamServer serves on a socket file, one client at a time, and removes it at shutdown", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  const path = await t.socketPath();
  const served = await serve(
    t,
    "UnixStreamServer",
    () => new lib.UnixStreamServer(path, recorderClass(lib, journal)),
  );
  for (const name of ["first", "second"]) {
    const probe = await t.connect({ path }, `${name} unix client`);
    await probe.send(`${name} over a unix socket\n`, { split: "bytes" });
    await probe.expect(`${name} over a unix socket\n`);
    await hangUp(probe);
  }
  const once = ["setup unix", "handle unix", "finish unix"];
  t.expectEqual(
    journal.all(),
    [...once, ...once],
    "the handler events (named by the transport of the handler's clientAddress)",
    "the same base serves Unix sockets: one request at a time, and the handler's address is a unix one",
  );
  const report = await t.step("shutdown() of the idle Unix server", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
  const left = await Deno.lstat(path).then(() => "the socket file is still there", () => "gone");
  t.expectEqual(
    left,
    "gone",
    `look for ${path} after shutdown()`,
    "shutdown() closes the listener",
  );
});

// ─── the broadcast echo server ──────────────────────────────────────────────

/** Starts a BroadcastServer and connects the named clients, waiting until all have joined. */
async function broadcastRoom(t: Grader, names: string[], options: Lesson.BroadcastOptions = {}) {
  const lib = await load(t);
  const served = await serve(
    t,
    "BroadcastServer",
    () => new lib.BroadcastServer({ port: 0 }, options),
  );
  const server = served.server;
  const clients: Probe[] = [];
  for (const name of names) {
    clients.push(await client(t, server.addr, name));
    await waitForAudience(t, server, clients.length, `${name} has joined`);
  }
  return { served, server, clients };
}

async function waitForAudience(
  t: Grader,
  server: Lesson.BroadcastServer,
  size: number,
  why: string,
  note = "setup() adds the client's connection to server.clients; finish() removes it",
): Promise<void> {
  await t.eventually(
    `${why}: server.clients.size becomes ${size}`,
    () => server.clients.size === size,
    {
      expected: `server.clients.size to be ${size}`,
      actual: () => `it is ${server.clients.size}`,
      note,
    },
  );
}

/** Every probe must read `line` next; `note` is the advice if one does not. */
async function everyoneGets(
  clients: Probe[],
  line: string,
  why: string,
  note?: string,
): Promise<void> {
  for (const probe of clients) {
    await probe.expect(line, {
      step: `${probe.label} receives ${JSON.stringify(line)} (${why})`,
      note,
    });
  }
}

suite.test("BroadcastServer sends every whole line to every client", async (t) => {
  const { served, server, clients } = await broadcastRoom(t, ["A", "B", "C"], {
    maxLineBytes: 64,
  });
  const [a, b, c] = clients;
  await a.send("hello ", { split: "bytes" });
  await b.send("other\n");
  await everyoneGets(
    clients,
    "other\n",
    "B's line; A's line is not finished yet",
    "broadcast whole lines only: A's unfinished line must wait for its newline, and never be " +
      "mixed into B's (read lines with readLine, not raw chunks)",
  );
  await a.send("world\n", { split: "bytes" });
  await everyoneGets(clients, "hello world\n", "A's line, now finished");
  await c.send("ça va, 世界?\n", { split: "bytes" });
  await everyoneGets(clients, "ça va, 世界?\n", "C's line, sent one byte at a time");
  for (const probe of clients) await hangUp(probe);
  await waitForAudience(t, server, 0, "every client has left");
  const report = await t.step("shutdown() of the empty room", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
});

suite.test("BroadcastServer: a client that resets does not disturb the others", async (t) => {
  const { server, clients } = await broadcastRoom(t, ["A", "B"]);
  const [a, b] = clients;
  await t.reset(server.addr, "C", "half a li");
  await a.send("still here\n");
  await everyoneGets(
    clients,
    "still here\n",
    "A's line after C's reset",
    "a client that resets (RST) in the middle of a line must just leave: its half line is not " +
      "a line, and the others go on",
  );
  await b.send("me too\n", { split: "bytes" });
  await everyoneGets(
    clients,
    "me too\n",
    "B's line",
    "A's handler must survive C's reset too: a failed write to C must not end anyone else's handler",
  );
  await waitForAudience(t, server, 2, "C is gone after its reset");
});

/**
 * A connection whose peer has reset: every write to it fails. The grader
 * slips it into `server.clients` as a client that died where the server had
 * not noticed yet.
 */
async function deadConnection(t: Grader): Promise<Deno.Conn> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept();
    await t.reset(listener.addr, "X (dies)");
    const conn = await accepted;
    t.defer(() => {
      try {
        conn.close();
      } catch {
        // Your server closed it.
      }
    });
    return conn;
  } finally {
    listener.close();
  }
}

suite.test("BroadcastServer.broadcast skips a dead client, drops it, and still reaches the clients after it", async (t) => {
  const { server, clients: [a] } = await broadcastRoom(t, ["A"]);
  const dead = await deadConnection(t);
  server.clients.add(dead);
  t.transcript.record("grader", "note", {
    detail: "added the dead connection X to server.clients, after A and before B",
  });
  const b = await client(t, server.addr, "B");
  await waitForAudience(t, server, 3, "B has joined (A, dead X, B)");
  await a.send("to everyone\n");
  await a.expect("to everyone\n", { step: "A receives its own line" });
  await b.expect("to everyone\n", {
    step: "B, who comes after the dead X, receives A's line",
    note:
      "a write to a dead client fails: that must not stop the broadcast. Write to a snapshot of " +
      "the clients side by side (Promise.allSettled) and drop the ones whose write failed",
  });
  await t.eventually(
    "the dead client is dropped from server.clients",
    () => !server.clients.has(dead),
    {
      expected: "server.clients no longer to hold X, whose write failed",
      actual: () => `server.clients.size is ${server.clients.size} and still holds X`,
      note: "dropClient(conn, reason) every client whose write was rejected",
    },
  );
  await b.send("and back\n");
  await everyoneGets(
    [a, b],
    "and back\n",
    "B's line",
    "A's handler must survive the failed write to X",
  );
});

for (const split of ["whole", "bytes"] as const) {
  suite.test(`BroadcastServer cuts off a client whose line is too long (sent ${split === "whole" ? "in one write" : "byte by byte"})`, async (t) => {
    const { server, clients } = await broadcastRoom(t, ["A", "B"], { maxLineBytes: 32 });
    const [a, b] = clients;
    await a.send("x".repeat(32), { split });
    const reply = await a.readLine({
      step: "A sent 32 bytes without a newline (the limit is 32): A gets an error line",
      note:
        "a line, newline included, is at most maxLineBytes: readLine(this.server.maxLineBytes) " +
        "throws LineTooLongError once 32 bytes came without a newline; answer the error line",
    });
    t.check(reply.startsWith("error: "), {
      step: "the line A got",
      expected: '"error: line longer than 32 bytes\\n"',
      actual: JSON.stringify(reply),
    });
    await a.expectEnd({ step: "then the server closes A's connection" });
    await b.send("fine\n");
    await b.expect("fine\n", {
      step: "B's next line is its own: none of A's x's reached B",
      note: "nothing of an over-long line may be broadcast",
    });
    await waitForAudience(t, server, 1, "A is gone");
  });
}

for (const split of ["whole", "bytes"] as const) {
  suite.test(`BroadcastServer broadcasts a line of exactly maxLineBytes (sent ${split === "whole" ? "in one write" : "byte by byte"})`, async (t) => {
    const { clients } = await broadcastRoom(t, ["A", "B"], { maxLineBytes: 32 });
    const [a] = clients;
    const line = "y".repeat(31) + "\n"; // 32 bytes, newline included: exactly the limit
    await a.send(line, { split });
    await everyoneGets(
      clients,
      line,
      "A's line of exactly 32 bytes, newline included",
      "a line, newline included, may be maxLineBytes long: readLine(this.server.maxLineBytes)",
    );
  });
}

suite.test("BroadcastHandler passes an error that is not a line too long on to handleError", async (t) => {
  const lib = await load(t);
  const failures: unknown[] = [];
  /** Your BroadcastHandler, except that readLine fails with an error no line explains. */
  class Faulty extends lib.BroadcastHandler {
    override readLine(): Promise<Uint8Array | null> {
      return Promise.reject(new GraderFault("readLine broke (the grader's doing)"));
    }
  }
  const served = await serve(t, "BroadcastServer", () => {
    const server = new lib.BroadcastServer({ port: 0 }, { maxLineBytes: 32 });
    (server as { handlerClass: unknown }).handlerClass = Faulty;
    const original = server.handleError;
    server.handleError = function (error, request, clientAddress) {
      failures.push(error);
      return original.call(this, error, request, clientAddress);
    };
    return server;
  });
  const a = await client(t, served.server.addr, "A");
  await a.expectEnd({
    step: "A's readLine failed with an error that is not a line too long: A gets no line",
    note:
      "answer the error line only for LineTooLongError; rethrow any other error of readLine, so " +
      "the server's handleError sees it",
  });
  await t.eventually("handleError gets the error", () => failures.length > 0, {
    expected: "one call of handleError, with the GraderFault",
    actual: () => `${failures.length} call(s)`,
  });
  t.check(failures[0] instanceof GraderFault, {
    step: "the error handleError got",
    expected: "the GraderFault readLine threw",
    actual: describeError(failures[0]),
    note: "rethrow errors that are not LineTooLongError from handle()",
  });
});

// ─── the output policy: a queue per client, bounded ──────────────────────────

/**
 * A client connection of the grader's making, slipped into `server.clients`:
 * each write waits until the grader lets it through (a client that does not
 * read), or is taken a few bytes at a time (a slow reader). It records every
 * write call and the bytes it took.
 */
class FakeClient {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  writes = 0;
  closed = false;
  readonly #taken: Uint8Array[] = [];
  readonly #held: { resolve: (n: number) => void; reject: (e: Error) => void; n: number }[] = [];
  #released = false;

  constructor(
    readonly t: Grader,
    readonly label: string,
    port: number,
    /** "stuck": no write completes until release(); a number: each write takes that many bytes, a turn later. */
    readonly mode: "stuck" | number,
  ) {
    this.remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port };
  }

  get conn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }

  /** Every byte written so far, in order. */
  get text(): string {
    return decoder.decode(concatBytes(this.#taken));
  }

  write(bytes: Uint8Array): Promise<number> {
    this.writes++;
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    const n = this.mode === "stuck" ? bytes.length : Math.min(this.mode, bytes.length);
    const copy = bytes.slice(0, n);
    return new Promise<number>((resolve, reject) => {
      const take = (count: number) => {
        this.#taken.push(copy);
        this.t.transcript.record(this.label, "received", { bytes: copy });
        resolve(count);
      };
      if (this.mode === "stuck" && !this.#released) this.#held.push({ resolve: take, reject, n });
      else if (this.mode === "stuck") take(n);
      else {setTimeout(() =>
          this.closed ? reject(new Deno.errors.BadResource("closed")) : take(n), 0);}
    });
  }

  /** Lets the writes held now through; later ones are held again. */
  pass(): void {
    for (const { resolve, n } of this.#held.splice(0)) resolve(n);
  }

  /** Lets the held writes through, and every later one at once. */
  release(): void {
    this.#released = true;
    for (const { resolve, n } of this.#held.splice(0)) resolve(n);
  }

  close(): void {
    if (this.closed) throw new Deno.errors.BadResource("Bad resource ID");
    this.closed = true;
    this.t.transcript.record(this.label, "note", { detail: "your server closed it" });
    for (const { reject } of this.#held.splice(0)) {
      reject(new Deno.errors.Interrupted("operation canceled"));
    }
  }
}

const QUEUE_NOTE = "broadcast must not wait for any client: it puts the line in each client's " +
  "own queue and returns; each queue has its own writer. Count the bytes queued for a client " +
  "(the line being written included) and drop the client (dropClient) when a line would take " +
  "it past maxQueueBytes — exactly maxQueueBytes is still fine";

suite.test("BroadcastServer: a client that never reads holds up no one, and is dropped past maxQueueBytes", async (t) => {
  const { server, clients } = await broadcastRoom(t, ["A", "B"], {
    maxLineBytes: 32,
    maxQueueBytes: 64,
  });
  const [a] = clients;
  const s = new FakeClient(t, "S (never reads)", 7, "stuck");
  t.defer(() => s.release());
  server.clients.add(s.conn);
  t.transcript.record("grader", "note", {
    detail: "added S, a client that never reads, to server.clients (maxQueueBytes: 64)",
  });
  const line = (i: number) => `line ${i} is 16 by\n`; // 16 bytes
  const queued: number[] = [];
  for (let i = 1; i <= 4; i++) {
    await a.send(line(i));
    await everyoneGets(clients, line(i), `line ${i} of A, with S not reading`, QUEUE_NOTE);
    queued.push(server.queuedBytes(s.conn));
  }
  t.check(server.clients.has(s.conn) && !s.closed, {
    step: "S, with exactly maxQueueBytes (64) queued",
    expected: "still a client: exactly maxQueueBytes is fine",
    actual: s.closed ? "S was dropped and closed" : "S is no longer in server.clients",
    note: QUEUE_NOTE,
  });
  t.expectEqual(
    queued,
    [16, 32, 48, 64],
    "server.queuedBytes(S) after each of the 4 lines of 16 bytes (S takes none)",
    QUEUE_NOTE,
  );
  await a.send("\n"); // one more byte for S: 65 > 64
  await everyoneGets(clients, "\n", "an empty line of A, one byte more than S's queue may hold");
  t.check(!server.clients.has(s.conn) && s.closed, {
    step: "S, once a line would take its queue to 65 bytes (maxQueueBytes is 64)",
    expected: "dropped: out of server.clients and its connection closed (dropClient)",
    actual: `${server.clients.has(s.conn) ? "still in" : "out of"} server.clients, ${
      s.closed ? "closed" : "not closed"
    }; queuedBytes(S) is ${server.queuedBytes(s.conn)}`,
    note: QUEUE_NOTE,
  });
  await t.eventually(
    "every queue is gone once S is dropped and A and B have their lines",
    () => server.queuedClients === 0,
    {
      expected: "server.queuedClients to be 0",
      actual: () => `it is ${server.queuedClients}`,
      note: "a queue whose writer has nothing left to do, or whose client is gone, is deleted " +
        "from the map: a long-running server must not keep one per client that ever came",
    },
  );
  t.expectEqual(
    s.writes,
    1,
    "write calls on S in all (one line was being written when S was dropped)",
    "lines queued for a client that was dropped are never written: its writer stops",
  );
  await a.send("after S\n");
  await everyoneGets(clients, "after S\n", "A's next line");
});

suite.test("BroadcastServer counts only the bytes not yet written: a client that reads is never dropped", async (t) => {
  const { server, clients } = await broadcastRoom(t, ["A"], { maxQueueBytes: 64 });
  const [a] = clients;
  const p = new FakeClient(t, "P (reads when the grader says)", 10, "stuck");
  t.defer(() => p.release());
  server.clients.add(p.conn);
  const line = (i: number) => `line ${i} is 16 by\n`; // 16 bytes
  for (let i = 1; i <= 3; i++) {
    await a.send(line(i));
    await a.expect(line(i), { step: `A gets its line ${i}` });
  }
  t.expectEqual(
    server.queuedBytes(p.conn),
    48,
    "server.queuedBytes(P) with 3 lines for P",
    QUEUE_NOTE,
  );
  t.transcript.record("grader", "note", { detail: "P takes the write under way (line 1)" });
  p.pass();
  await t.eventually(
    "P's writer goes on with lines 2 and 3",
    () => p.writes === 2,
    {
      expected: "a second write call on P",
      actual: () => `${p.writes} write call(s)`,
      note: "once a write is done the writer takes what was queued meanwhile",
    },
  );
  t.expectEqual(
    server.queuedBytes(p.conn),
    32,
    "server.queuedBytes(P) once line 1 is written (lines 2 and 3 under way)",
    "take a batch's bytes off the queue once it is written: the queue bound is about bytes " +
      "still waiting, not about all the bytes a client ever got",
  );
  p.release(); // from now on P takes every write at once
  await t.eventually("P's queue is gone once it has everything", () => server.queuedClients === 0, {
    expected: "server.queuedClients to be 0",
    actual: () => `it is ${server.queuedClients}, queuedBytes(P) ${server.queuedBytes(p.conn)}`,
  });
  for (let i = 4; i <= 9; i++) {
    await a.send(line(i));
    await a.expect(line(i), { step: `A gets its line ${i} (P takes them as they come)` });
  }
  await t.eventually("P has taken every line", () => p.text.length === 9 * 16, {
    expected: `${9 * 16} bytes written to P`,
    actual: () => `${p.text.length}`,
  });
  t.check(server.clients.has(p.conn) && !p.closed, {
    step: `P, which took ${9 * 16} bytes in all (maxQueueBytes is 64), a few at a time`,
    expected: "still a client: it reads, so its queue never held more than 64 bytes",
    actual: p.closed ? "P was dropped and closed" : "P is no longer in server.clients",
    note: "only what is queued and not yet written counts towards maxQueueBytes",
  });
});

suite.test("BroadcastServer: the lines queued for a client that left are not written", async (t) => {
  const { server, clients } = await broadcastRoom(t, ["A"], { maxQueueBytes: 1024 });
  const [a] = clients;
  const s = new FakeClient(t, "S (leaves)", 8, "stuck");
  t.defer(() => s.release());
  server.clients.add(s.conn);
  for (const text of ["one\n", "two\n", "three\n"]) {
    await a.send(text);
    await a.expect(text, { step: `A gets ${JSON.stringify(text)}` });
  }
  // S leaves the audience (as finish() does) while its first write is still under way.
  server.clients.delete(s.conn);
  t.transcript.record("grader", "note", {
    detail: "removed S from server.clients (as its finish() would), then let its write through",
  });
  s.release();
  await t.eventually("S's queue is gone", () => server.queuedClients === 0, {
    expected: "server.queuedClients to be 0",
    actual: () => `it is ${server.queuedClients}`,
    note: "the writer of a client that is no longer in server.clients stops and deletes its queue",
  });
  t.expectEqual(
    s.writes,
    1,
    "write calls on S (two lines were still queued when S left)",
    "before each write, the writer checks that the client is still in server.clients: lines " +
      "for a client that left are dropped, not written to a connection about to close",
  );
});

suite.test("BroadcastServer: a slow reader gets every line whole and in order", async (t) => {
  const { server, clients } = await broadcastRoom(t, ["A", "B"], { maxQueueBytes: 4096 });
  const [a, b] = clients;
  const slow = new FakeClient(t, "T (takes 5 bytes a turn)", 9, 5);
  server.clients.add(slow.conn);
  const lines = ["first line from a\n", "second, from b\n", "third from a\n", "4\n"];
  await a.send(lines[0] + lines[2]);
  await b.send(lines[1]);
  await a.send(lines[3]);
  const expected = new Map<Probe, string>();
  for (const probe of clients) {
    const got = [];
    for (let i = 0; i < lines.length; i++) {
      got.push(await probe.readLine({ step: `${probe.label} reads line ${i + 1} of 4` }));
    }
    expected.set(probe, got.join(""));
  }
  await t.eventually(
    "T has taken all four lines",
    () => slow.text.length >= expected.get(a)!.length,
    {
      expected: `${expected.get(a)!.length} bytes written to T`,
      actual: () => `${slow.text.length} bytes: ${JSON.stringify(slow.text)}`,
      note: "every client in server.clients gets every line, slow or not",
    },
  );
  t.expectEqual(
    slow.text,
    expected.get(a)!,
    "the bytes T got, 5 at a time (A's order)",
    "one writer per client writes its queue in order, one write after the other: writing each " +
      "line on its own the moment it arrives makes two writeAll run at once on T, and their " +
      "pieces interleave",
  );
});

suite.test("BroadcastServer: a client that ends its stream still gets the lines queued for it", async (t) => {
  const lib = await load(t);
  const watch = { eof: false, release: () => {} };
  const released = new Promise<void>((resolve) => watch.release = resolve);
  t.defer(() => watch.release());
  /** The grader's A: its writes wait until the grader lets them go; its reads are watched. */
  const slowWrites = (conn: Deno.Conn): Deno.Conn =>
    new Proxy(conn, {
      get(target, property) {
        if (property === "write") {
          return async (bytes: Uint8Array) => {
            await released;
            return await target.write(bytes);
          };
        }
        if (property === "read") {
          return async (buffer: Uint8Array) => {
            const n = await target.read(buffer);
            if (n === null) watch.eof = true;
            return n;
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  class Watched extends lib.BroadcastServer {
    protected override async getRequest(): Promise<Lesson.Incoming<Deno.Conn>> {
      const incoming = await super.getRequest();
      return { request: slowWrites(incoming.request), clientAddress: incoming.clientAddress };
    }
  }
  const served = await serve(t, "BroadcastServer", () => new Watched({ port: 0 }));
  const a = await client(t, served.server.addr, "A");
  await waitForAudience(t, served.server, 1, "A has joined");
  await a.send("last words\n");
  await a.closeWrite();
  await t.eventually("your server reads A's end of stream", () => watch.eof, {
    expected: "A's read to return null",
    actual: () => "it has not yet",
  });
  await ioTurns();
  t.transcript.record("grader", "note", { detail: "lets the writes to A through" });
  watch.release();
  await a.expect("last words\n", {
    step: "A, which half-closed, still gets its own line",
    note:
      "EOF means no more lines from the client, not no more lines to it: when readLine returns " +
      "null, await this.server.flushed(this.request) before handle() returns (the server " +
      "closes the connection right after)",
  });
  await a.expectEnd({ step: "then the server closes A" });
});
