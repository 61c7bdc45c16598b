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
import { configure, type LogRecord, reset } from "@logtape/logtape";
import {
  describeError,
  GradeFailure,
  type Grader,
  isGradeFailure,
  lessonSuite,
  type Probe,
  withNote,
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

/** Lets the event loop turn once (timers, I/O). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Waits one turn of the event loop for `running` to fail at once (a starter's
 * TodoError, a crash), without waiting for it to finish.
 */
async function unlessItFailsAtOnce(running: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([running, new Promise((resolve) => timer = setTimeout(resolve, 0))]);
  } finally {
    clearTimeout(timer);
  }
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
  await t.step(`start ${label}.serveForever()`, () => unlessItFailsAtOnce(serving));
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

/** Connects and names the client in the journal. */
async function client(t: Grader, addr: Deno.Addr, name: string, journal?: Journal) {
  const probe = await t.connect(addr, name);
  journal?.name(probe, name);
  return probe;
}

/** Sends a line and expects it back: the handler of this client is running. */
async function echo(probe: Probe, line: string, step?: string): Promise<void> {
  await probe.send(line);
  await probe.expect(line, {
    step: step ?? `${probe.label} sends ${JSON.stringify(line)}, gets it back`,
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

  const error = await t.expectThrows(
    "run() of a handler whose handle() throws",
    () => new Steps("handle throws", clientAddress, server).run(),
    "run() to reject with handle()'s error once finish() has run",
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

  await t.expectThrows(
    "run() of a handler whose setup() throws",
    () => new Steps("setup throws", clientAddress, server).run(),
    "run() to reject with setup()'s error",
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
  await t.step("handleRequest() waits for a client", () => unlessItFailsAtOnce(one));

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
  const lib = await load(t);
  const journal = new Journal();
  const served = await serve(
    t,
    "TcpServer",
    () => new lib.TcpServer({ port: 0 }, recorderClass(lib, journal)),
  );
  const addr = served.server.addr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n");
  const b = await client(t, addr, "B", journal);
  await b.send("b1\n");
  const c = await client(t, addr, "C", journal);
  await c.send("c1\n");
  await echo(a, "a2\n", "A is still being served while B and C wait");
  expectEvents(
    t,
    journal,
    ["setup A", "handle A"],
    "handler events while A's request is open",
    "a serial server handles one request at a time: B and C wait, connected, until A's handler has finished",
  );
  await hangUp(a);
  await withNote(
    () => b.expect("b1\n", { step: "B's line comes back after A is done" }),
    "once A's request is over, the serial server must accept the next client (B)",
  );
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
  const lib = await load(t);
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["workbook"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  t.defer(() => reset());
  const journal = new Journal();
  const served = await serve(
    t,
    "TcpServer",
    () => new lib.TcpServer({ port: 0 }, recorderClass(lib, journal)),
  );
  const a = await client(t, served.server.addr, "A", journal);
  await a.send("throw\n");
  await a.expectEnd({ step: "A's handler throws; the server closes A's connection" });
  const port = (a.conn.localAddr as Deno.NetAddr).port;
  const b = await client(t, served.server.addr, "B", journal);
  await withNote(
    () => echo(b, "still serving?\n"),
    "one request's error must not stop the server: the next client must be served",
  );
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
  await withNote(
    () => echo(b, "after two failures\n"),
    "a handleError hook that throws must not stop the server either: guard the call",
  );
  await hangUp(b);
});

suite.test("ConcurrentTcpServer overlaps two slow requests", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  const served = await serve(
    t,
    "ConcurrentTcpServer",
    () => new lib.ConcurrentTcpServer({ port: 0 }, recorderClass(lib, journal)),
  );
  const addr = served.server.addr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n", "A's handler is running (the grader keeps A open)");
  const b = await client(t, addr, "B", journal);
  await withNote(
    () => echo(b, "b1\n", "B gets its line back while A's request is still open"),
    "a concurrent server starts a task per connection and goes straight back to accept(); " +
      "yours waited for A's handler to end (processRequest must not await the task)",
  );
  await hangUp(b);
  await echo(a, "a2\n", "A is still served after B has come and gone");
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

// ─── shutdown ────────────────────────────────────────────────────────────────

/** Connects until refused: shutdown() may close the listener a moment after it is called. */
async function expectRefused(t: Grader, addr: Deno.NetAddr): Promise<void> {
  const step = "a new client connects after shutdown() began";
  const deadline = performance.now() + 2000;
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
    if (performance.now() > deadline) {
      t.fail({
        step,
        expected: "the connection to be refused: a stopping server accepts no one",
        actual: "it was still accepted 2 s after shutdown() was called",
        note: "shutdown() first stops accepting: stopAccepting() closes the listener",
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

suite.test("shutdown lets the request in flight finish, refuses new clients, reports drained", async (t) => {
  const lib = await load(t);
  const journal = new Journal();
  const served = await serve(
    t,
    "ConcurrentTcpServer",
    () => new lib.ConcurrentTcpServer({ port: 0 }, recorderClass(lib, journal)),
  );
  const addr = served.server.addr as Deno.NetAddr;
  const a = await client(t, addr, "A", journal);
  await echo(a, "a1\n", "A's request is in flight");
  const stopping = served.shutdown({ deadlineMs: 4000 });
  stopping.then(() => journal.note("shutdown resolved"), () => {});
  await t.step(
    "shutdown({ deadlineMs: 4000 }) begins while A is in flight",
    () => unlessItFailsAtOnce(stopping),
  );
  await expectRefused(t, addr);
  await withNote(
    () => echo(a, "a2\n", "A is still served while shutdown() waits for it"),
    "before its deadline, shutdown() waits: requests in flight go on being served",
  );
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

for (const kind of ["TcpServer", "ConcurrentTcpServer"] as const) {
  suite.test(`shutdown with a short deadline cuts a stuck request and still resolves (${kind})`, async (t) => {
    const lib = await load(t);
    const journal = new Journal();
    const served = await serve(
      t,
      kind,
      () => new lib[kind]({ port: 0 }, recorderClass(lib, journal)),
    );
    const names = kind === "TcpServer" ? ["A"] : ["A", "B"];
    const stuck: Probe[] = [];
    for (const name of names) {
      const probe = await client(t, served.server.addr, name, journal);
      await echo(
        probe,
        `${name} never finishes\n`,
        `${name}'s request is in flight (and never ends)`,
      );
      stuck.push(probe);
    }
    const report = await withNote(
      () =>
        t.step(
          "shutdown({ deadlineMs: 100 }) while the handlers wait for bytes that never come",
          () => served.shutdown({ deadlineMs: 100 }),
          { timeoutMs: 3000 },
        ),
      "after the deadline shutdown() closes the requests still running and stops waiting: " +
        "it must resolve even when a handler would never end",
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
    for (const name of names) {
      await t.eventually(
        `finish() runs for ${name}, cut off at the deadline`,
        () => journal.has(`finish ${name}`),
        {
          expected: `the event "finish ${name}"`,
          actual: () => inspect(journal.list()),
          note: "a cut request's read fails; run()'s finally still calls finish()",
        },
      );
    }
    await t.step("serveForever() returns after shutdown()", () => served.serving);
  });
}

// ─── UDP and Unix ────────────────────────────────────────────────────────────

/** The grader's UDP socket: each datagram recorded, received in the background. */
class DatagramClient {
  readonly socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  readonly #t: Grader;
  readonly #label: string;
  readonly #queue: Uint8Array[] = [];
  #wake?: () => void;
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
        this.#wake?.();
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

  /** The next datagram, within 2 s. */
  async next(step: string): Promise<string> {
    const deadline = performance.now() + 2000;
    while (this.#queue.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0 || this.#t.signal.aborted) {
        this.#t.throwIfInterrupted();
        this.#t.fail({
          step,
          expected: "a datagram within 2000 ms",
          actual: "none arrived",
          kind: "timeout",
        });
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(left, 50));
      });
      clearTimeout(timer);
    }
    return decoder.decode(this.#queue.shift());
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

suite.test("UdpServer answers each datagram on its own and survives a failing handler", async (t) => {
  const lib = await load(t);
  const events: string[] = [];
  class Shout extends lib.BaseRequestHandler<Lesson.Datagram> {
    override async handle(): Promise<void> {
      const text = decoder.decode(this.request.data);
      const from = this.clientAddress.transport === "udp" ? this.clientAddress.port : "?";
      events.push(`${text} from ${from}`);
      if (text === "throw") throw new Error("thrown on purpose by the grader's UDP handler");
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
  const third = await withNote(
    () => me.next('the reply to "again", sent after the datagram that made the handler throw'),
    'the handler of "throw" failed; the server must go on and answer the next datagram',
  );
  t.expectEqual(third, "AGAIN", "the reply after the failure");
  const report = await t.step("shutdown() of the idle UDP server", () => served.shutdown({}));
  t.expectEqual(report, { outcome: "drained", cut: 0 }, "shutdown()'s report");
  await t.step("serveForever() returns after shutdown()", () => served.serving);
  let again: Deno.DatagramConn;
  try {
    again = Deno.listenDatagram({ hostname: "127.0.0.1", port: addr.port, transport: "udp" });
  } catch (error) {
    throw t.fail({
      step: `bind UDP port ${addr.port} again after shutdown()`,
      expected: "the port to be free: shutdown() closes the server's socket",
      actual: describeError(error),
    });
  }
  again.close();
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
async function broadcastRoom(t: Grader, names: string[], options: { maxLineBytes?: number } = {}) {
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

/** Every probe must read `line` next. */
async function everyoneGets(clients: Probe[], line: string, why: string): Promise<void> {
  for (const probe of clients) {
    await probe.expect(line, { step: `${probe.label} receives ${JSON.stringify(line)} (${why})` });
  }
}

suite.test("BroadcastServer sends every whole line to every client", async (t) => {
  const { served, server, clients } = await broadcastRoom(t, ["A", "B", "C"], {
    maxLineBytes: 64,
  });
  const [a, b, c] = clients;
  await a.send("hello ", { split: "bytes" });
  await b.send("other\n");
  await withNote(
    () => everyoneGets(clients, "other\n", "B's line; A's line is not finished yet"),
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
  await withNote(
    () => everyoneGets(clients, "still here\n", "A's line after C's reset"),
    "a client that resets (RST) in the middle of a line must just leave: its half line is not " +
      "a line, and the others go on",
  );
  await b.send("me too\n", { split: "bytes" });
  await withNote(
    () => everyoneGets(clients, "me too\n", "B's line"),
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
  await withNote(
    () => b.expect("to everyone\n", { step: "B, who comes after the dead X, receives A's line" }),
    "a write to a dead client fails: that must not stop the broadcast. Write to a snapshot of " +
      "the clients side by side (Promise.allSettled) and drop the ones whose write failed",
  );
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
  await withNote(
    () => everyoneGets([a, b], "and back\n", "B's line"),
    "A's handler must survive the failed write to X",
  );
});

for (const split of ["whole", "bytes"] as const) {
  suite.test(`BroadcastServer cuts off a client whose line is too long (sent ${split === "whole" ? "in one write" : "byte by byte"})`, async (t) => {
    const { server, clients } = await broadcastRoom(t, ["A", "B"], { maxLineBytes: 32 });
    const [a, b] = clients;
    await a.send("x".repeat(32), { split });
    const reply = await withNote(
      () =>
        a.readLine({
          step: "A sent 32 bytes without a newline (the limit is 32): A gets an error line",
        }),
      "a line, newline included, is at most maxLineBytes: readLine(this.server.maxLineBytes) " +
        "throws LineTooLongError once 32 bytes came without a newline; answer the error line",
    );
    t.check(reply.startsWith("error: "), {
      step: "the line A got",
      expected: '"error: line longer than 32 bytes\\n"',
      actual: JSON.stringify(reply),
    });
    await a.expectEnd({ step: "then the server closes A's connection" });
    await b.send("fine\n");
    await withNote(
      () => b.expect("fine\n", { step: "B's next line is its own: none of A's x's reached B" }),
      "nothing of an over-long line may be broadcast",
    );
    await waitForAudience(t, server, 1, "A is gone");
  });
}
