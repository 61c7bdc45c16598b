/**
 * Lesson 09 — what one connection costs (given, nothing to write). Python's
 * `ForkingMixIn` gives every connection a process of its own; Deno has no
 * `fork()`, so this bench serves the same small line protocol (lesson 03's:
 * `hello\n` gets `ack-HELLO\n`) in the three ways Deno does have, and measures
 * each on loopback:
 *
 * - `task`: an async function per connection (what `ConcurrentTcpServer` does:
 *   `ThreadingMixIn`'s place in this workbook);
 * - `worker`: a `Worker` (a thread with its own V8 isolate) per connection. A
 *   socket cannot be sent to a worker, so the main thread keeps it and the
 *   bytes travel both ways with `postMessage`;
 * - `process`: a `deno` subprocess per connection, inetd-style. A child
 *   cannot inherit an accepted socket either, so the server pipes the
 *   socket's bytes into the child's stdin and the child's stdout back.
 *
 * For each model, N clients connect one after another; each sends a line,
 * waits for its reply and stays connected (connections/s, time to the first
 * reply). With all N live, the memory they hold (RSS); then every client sends
 * one more line at once (are all N still served?), and all of them close. It
 * measures, it grades nothing.
 *
 * ```sh
 * deno task run 9 per-connection                 # 200 tasks, 200 workers, 50 processes
 * deno task run 9 per-connection --only process --processes 20
 * deno task run 9 per-connection --tasks 1000 --workers 50 --step-ms 30000
 * deno task run 9 per-connection --port 9000 --connections 50   # time a server of your own
 * ```
 *
 * Every step has a deadline (`--step-ms`, default 20 s) and the whole run a
 * budget (`--budget-ms`, default 300 s); the counts are capped (2000 tasks,
 * 500 workers, 200 processes). `--hold-ms 30000` keeps all N connections open
 * for 30 s before the last steps, to look at them with `ps`, `top` or `ss`.
 *
 * @module
 */

/** The first argument that makes this file a per-connection child process. */
const CHILD_FLAG = "--per-connection-child";
/** Longest line the handlers accept, as in lesson 03. */
const MAX_LINE = 1024;
/** Each handler's read buffer: part of what a connection costs, whichever the model. */
const READ_BUFFER = 4096;

/** Bytes in a plain (transferable) ArrayBuffer. */
type Bytes = Uint8Array<ArrayBuffer>;

const encoder = new TextEncoder();
const ACK = encoder.encode("ack-");
const TOO_LONG = encoder.encode(`error: line longer than ${MAX_LINE} bytes\n`);

/**
 * The handler every model runs: lesson 03's protocol over a byte stream.
 * `push` takes whatever arrived and returns the replies to send (one buffer)
 * and whether the connection is done (a line too long).
 */
class Acker {
  #pending: Bytes = new Uint8Array(0);

  push(chunk: Uint8Array): { out: Bytes; done: boolean } {
    const joined = new Uint8Array(this.#pending.length + chunk.length);
    joined.set(this.#pending);
    joined.set(chunk, this.#pending.length);
    const replies: Bytes[] = [];
    let start = 0;
    for (let end = joined.indexOf(0x0a); end >= 0; end = joined.indexOf(0x0a, start)) {
      if (end - start > MAX_LINE) return { out: join([...replies, TOO_LONG]), done: true };
      replies.push(ackLine(joined.subarray(start, end)));
      start = end + 1;
    }
    this.#pending = joined.slice(start);
    if (this.#pending.length > MAX_LINE) return { out: join([...replies, TOO_LONG]), done: true };
    return { out: join(replies), done: false };
  }

  /** The reply to a last line that came without `\n`, if there was one. */
  finish(): Bytes {
    const last = this.#pending;
    this.#pending = new Uint8Array(0);
    return last.length ? ackLine(last) : last;
  }
}

function ackLine(line: Uint8Array): Bytes {
  const reply = new Uint8Array(ACK.length + line.length + 1);
  reply.set(ACK);
  for (let i = 0; i < line.length; i++) {
    const byte = line[i];
    reply[ACK.length + i] = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
  }
  reply[reply.length - 1] = 0x0a;
  return reply;
}

function join(parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ── the worker's side: one connection's handler on its own thread ───────────

/** The little of a worker's global scope this file uses. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<Uint8Array | null>) => void) | null;
  postMessage(message: Uint8Array | null, transfer?: Transferable[]): void;
  close(): void;
}

function workerMain(): void {
  const scope = globalThis as unknown as WorkerScope;
  const acker = new Acker();
  scope.onmessage = ({ data }) => {
    // null: the client finished sending. Answer a last unfinished line, then say done.
    const { out, done } = data === null ? { out: acker.finish(), done: true } : acker.push(data);
    if (out.length) scope.postMessage(out, [out.buffer]);
    if (done) {
      scope.postMessage(null);
      scope.onmessage = null;
    }
  };
}

// ── the child process's side: stdin is the client, stdout goes back to it ──

async function childMain(): Promise<void> {
  const acker = new Acker();
  const buffer = new Uint8Array(READ_BUFFER);
  let reported = false;
  const send = async (bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
  };
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    const { out, done } = n === null
      ? { out: acker.finish(), done: true }
      : acker.push(buffer.subarray(0, n));
    await send(out);
    if (!reported && out.length) {
      // Once warm (one line served), tell the parent how much memory this process holds.
      reported = true;
      await Deno.stderr.write(encoder.encode(`rss ${Deno.memoryUsage().rss}\n`));
    }
    if (done) return;
  }
}

// ── the bench (main thread) ─────────────────────────────────────────────────

type Model = "task" | "worker" | "process";
type Workbook = typeof import("workbook");

/** One model's figures. */
interface Figures {
  label: string;
  connections: number;
  setupMs: number;
  firstReplies: number[];
  /** Growth of the bench's RSS with every connection live, per connection (not for `--port`). */
  rssPerConnection?: number;
  /** Mean RSS each child process reported (process model only). */
  childRss?: number;
  againMs: number;
  /** Until the server's side of every connection had ended (not for `--port`). */
  closedMs?: number;
}

/** A server that runs one of the models for each connection it accepts. */
class Server {
  readonly listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  readonly handlers = new Set<Promise<void>>();
  readonly children = new Set<Deno.ChildProcess>();
  readonly workers = new Set<Worker>();
  readonly childRss: number[] = [];
  #accepting: Promise<void>;

  constructor(
    readonly wb: Workbook,
    readonly model: Model,
    hostname: string,
  ) {
    this.listener = Deno.listen({ hostname, port: 0 });
    this.#accepting = this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch (error) {
        if (this.wb.isListenerClosed(error)) return;
        continue; // a client that reset while queued: not this bench's concern
      }
      const handler = this.#serve(conn).catch(() => {}).finally(() =>
        this.handlers.delete(handler)
      );
      this.handlers.add(handler);
    }
  }

  #serve(conn: Deno.TcpConn): Promise<void> {
    switch (this.model) {
      case "task":
        return this.#serveTask(conn);
      case "worker":
        return this.#serveWorker(conn);
      case "process":
        return this.#serveProcess(conn);
    }
  }

  /** An async function per connection: a buffer, a promise, the handler's state. */
  async #serveTask(conn: Deno.TcpConn): Promise<void> {
    const acker = new Acker();
    const buffer = new Uint8Array(READ_BUFFER);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        const { out, done } = n === null
          ? { out: acker.finish(), done: true }
          : acker.push(buffer.subarray(0, n));
        if (out.length) await this.wb.writeAll(conn, out);
        if (done) return;
      }
    } finally {
      this.wb.closeQuietly(conn);
    }
  }

  /** A Worker per connection: the socket stays here, its bytes go by message. */
  #serveWorker(conn: Deno.TcpConn): Promise<void> {
    const worker = new Worker(import.meta.url, { type: "module", name: "per-connection" });
    this.workers.add(worker);
    const { promise, resolve } = Promise.withResolvers<void>();
    let writing = Promise.resolve();
    const end = () => {
      worker.terminate();
      this.workers.delete(worker);
      this.wb.closeQuietly(conn); // a read still pending below fails and ends its loop
      resolve();
    };
    worker.onmessage = ({ data }: MessageEvent<Uint8Array | null>) => {
      writing = writing.then(() => data === null ? end() : this.wb.writeAll(conn, data))
        .catch(end);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      end();
    };
    (async () => {
      const buffer = new Uint8Array(READ_BUFFER);
      try {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          const chunk = buffer.slice(0, n);
          worker.postMessage(chunk, [chunk.buffer]);
        }
        worker.postMessage(null);
      } catch {
        end(); // reset, or closed by end(): either way this connection is over
      }
    })();
    return promise;
  }

  /** A subprocess per connection, inetd-style: socket → stdin, stdout → socket. */
  async #serveProcess(conn: Deno.TcpConn): Promise<void> {
    const child = new Deno.Command("deno", {
      args: ["run", "--quiet", new URL(import.meta.url).pathname, CHILD_FLAG],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.children.add(child);
    const report = (async () => {
      const text = await new Response(child.stderr).text();
      const match = text.match(/^rss (\d+)$/m);
      if (match) this.childRss.push(Number(match[1]));
    })();
    try {
      await Promise.all([
        // the client's EOF closes the child's stdin; a reset aborts it: the child sees EOF
        conn.readable.pipeTo(child.stdin).catch(() => {}),
        child.stdout.pipeTo(conn.writable, { preventClose: true }).catch(() => {}),
        child.status,
        report,
      ]);
    } finally {
      this.children.delete(child);
      this.wb.closeQuietly(conn);
    }
  }

  /** Stops accepting; kills whatever is still running (after a deadline was missed). */
  async close(): Promise<void> {
    this.listener.close();
    await this.#accepting;
    for (const child of this.children) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    for (const worker of this.workers) worker.terminate();
    this.workers.clear();
  }
}

/** One client of the bench: its connection, and a small reader for its replies. */
class Client {
  #pending = "";
  readonly #buffer = new Uint8Array(256);
  constructor(readonly wb: Workbook, readonly conn: Deno.TcpConn) {}

  /** Sends `text` as a line and waits for `ack-TEXT` (all ASCII: decoding a piece is safe). */
  async ask(text: string): Promise<void> {
    await this.wb.writeAll(this.conn, encoder.encode(`${text}\n`));
    while (!this.#pending.includes("\n")) {
      const n = await this.conn.read(this.#buffer);
      if (n === null) break;
      this.#pending += new TextDecoder().decode(this.#buffer.subarray(0, n));
    }
    const end = this.#pending.indexOf("\n");
    const got = end < 0
      ? `${this.#pending} (then the connection closed)`
      : this.#pending.slice(0, end);
    this.#pending = this.#pending.slice(end + 1);
    if (got !== `ack-${text.toUpperCase()}`) {
      throw new Error(
        `"${text}" got ${JSON.stringify(got)} instead of "ack-${text.toUpperCase()}"`,
      );
    }
  }
}

/** `promise`, or an error naming `step` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once every handler of `server` has ended; names how many had not, after `ms`. */
async function handlersEnded(server: Server, ms: number, step: string): Promise<void> {
  const ended = (async () => {
    while (server.handlers.size) await Promise.race(server.handlers);
  })();
  try {
    await within(ended, ms, step);
  } catch (error) {
    throw new Error(`${(error as Error).message} (${server.handlers.size} still running)`);
  }
}

/** What one run of a model is asked to do. */
interface Plan {
  /** The model to serve with, or the port of a server that runs already (`--port`). */
  model: Model | { port: number };
  count: number;
  hostname: string;
  /** Deadline of each step, in ms. */
  stepMs: number;
  /** The run's budget ends at this `performance.now()`. */
  untilMs: number;
  /** How long to keep all N connections open before the last steps, to look at them. */
  holdMs: number;
}

/** Runs one model with `count` connections; every step bounded by `stepMs`, all by `untilMs`. */
async function measure(wb: Workbook, plan: Plan): Promise<Figures> {
  const { model, count, hostname, stepMs, untilMs, holdMs } = plan;
  const server = typeof model === "string" ? new Server(wb, model, hostname) : undefined;
  const label = typeof model === "string" ? LABELS[model] : `yours, on port ${model.port}`;
  const addr = { hostname, port: server?.listener.addr.port ?? (model as { port: number }).port };
  const clients: Client[] = [];
  const deadline = (what: string) => {
    const left = untilMs - performance.now();
    if (left <= 0) throw new Error(`${what}: the run's budget (--budget-ms) is spent`);
    return Math.min(stepMs, left);
  };
  try {
    // One connection first, unmeasured: the code paths are warm and the baseline is fair.
    const warm = new Client(wb, await Deno.connect(addr));
    await within(warm.ask("warm up"), deadline("warm-up"), `${label}: warm-up`);
    warm.conn.close();
    if (server) {
      await handlersEnded(server, deadline("warm-up"), `${label}: warm-up connection's end`);
      server.childRss.length = 0;
    }
    const rssBefore = Deno.memoryUsage().rss;

    const firstReplies: number[] = [];
    const setupStart = performance.now();
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const step = `${label}: connection ${i + 1} of ${count}`;
      const client = new Client(wb, await within(Deno.connect(addr), deadline(step), step));
      clients.push(client);
      await within(client.ask(`hello ${i}`), deadline(step), step);
      firstReplies.push(performance.now() - started);
    }
    const setupMs = performance.now() - setupStart;
    const rssPerConnection = server && (Deno.memoryUsage().rss - rssBefore) / count;
    if (holdMs > 0) {
      console.log(
        `  ${model}: ${count} connections open; holding them for ${holdMs} ms (pid ${Deno.pid})`,
      );
      await new Promise((resolve) => setTimeout(resolve, Math.min(holdMs, deadline("hold"))));
    }

    const againStart = performance.now();
    await within(
      Promise.all(clients.map((c, i) => c.ask(`again ${i}`))),
      deadline("again"),
      `${label}: one more line on all ${count} connections at once`,
    );
    const againMs = performance.now() - againStart;

    const closeStart = performance.now();
    for (const client of clients.splice(0)) client.conn.close();
    if (server) {
      await handlersEnded(
        server,
        deadline("close"),
        `${label}: the server's side of ${count} connections ending`,
      );
    }
    const closedMs = server && performance.now() - closeStart;
    const childRss = server?.childRss.length
      ? server.childRss.reduce((a, b) => a + b, 0) / server.childRss.length
      : undefined;
    return {
      label,
      connections: count,
      setupMs,
      firstReplies,
      rssPerConnection,
      childRss,
      againMs,
      closedMs,
    };
  } finally {
    for (const client of clients) wb.closeQuietly(client.conn);
    await server?.close();
  }
}

function countFlag(extra: Record<string, string>, name: string, fallback: number, max: number) {
  const value = extra[name] === undefined ? fallback : Number(extra[name]);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    console.error(`--${name} must be a whole number from 0 to ${max}, got ${extra[name]}`);
    Deno.exit(2);
  }
  return value;
}

function size(bytes: number): string {
  const abs = Math.abs(bytes);
  return abs >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

const LABELS: Record<Model, string> = {
  task: "task (async function)",
  worker: "Worker (thread + isolate)",
  process: "process (deno run)",
};

function print(f: Figures): void {
  const perSecond = f.connections / (f.setupMs / 1000);
  const memory = f.rssPerConnection === undefined
    ? "— (another program)"
    : f.childRss === undefined
    ? `${size(f.rssPerConnection)} of the bench's RSS`
    : `${size(f.childRss)} child RSS + ${size(f.rssPerConnection)} here`;
  console.log(
    `${f.label.padEnd(26)} ${String(f.connections).padStart(5)} ${
      perSecond.toFixed(perSecond < 100 ? 1 : 0).padStart(9)
    } ${median(f.firstReplies).toFixed(1).padStart(9)} ${
      Math.max(...f.firstReplies).toFixed(1).padStart(8)
    }   ${memory.padEnd(36)} ${f.againMs.toFixed(0).padStart(8)} ${
      (f.closedMs === undefined ? "—" : f.closedMs.toFixed(0)).padStart(9)
    }`,
  );
}

async function main(): Promise<void> {
  const wb: Workbook = await import("workbook");
  const args = wb.parseProgramArgs(Deno.args, { port: 0 }, [
    "tasks",
    "workers",
    "processes",
    "only",
    "step-ms",
    "budget-ms",
    "hold-ms",
    "connections",
  ]);
  // Processes before workers: terminated workers hand memory back slowly, and the RSS
  // baseline of the model after them would sink under it.
  const counts: Record<Model, number> = {
    task: countFlag(args.extra, "tasks", 200, 2000),
    process: countFlag(args.extra, "processes", 50, 200),
    worker: countFlag(args.extra, "workers", 200, 500),
  };
  const stepMs = countFlag(args.extra, "step-ms", 20_000, 600_000);
  const budgetMs = countFlag(args.extra, "budget-ms", 300_000, 3_600_000);
  const holdMs = countFlag(args.extra, "hold-ms", 0, 600_000);
  const only = args.extra.only;
  if (only !== undefined && !(only in counts)) {
    console.error(`--only must be task, worker or process, got ${only}`);
    Deno.exit(2);
  }
  const models = (Object.keys(counts) as Model[]).filter((m) =>
    (only === undefined || m === only) && counts[m] > 0
  );
  const untilMs = performance.now() + budgetMs;
  console.log(
    `a handler per connection, ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}: ` +
      `N clients connect to ${args.host} one after another,\neach sends a line, waits for its ` +
      `reply and stays connected; then one more line on all N at once; then all close.\n`,
  );
  console.log(
    `${"model".padEnd(26)} ${"N".padStart(5)} ${"conns/s".padStart(9)} ${"1st reply".padStart(9)} ${
      "max".padStart(8)
    }   ${"memory per live connection".padEnd(36)} ${"all N ms".padStart(8)} ${
      "closed ms".padStart(9)
    }`,
  );
  console.log(
    `${"".padEnd(26)} ${"".padStart(5)} ${"".padStart(9)} ${"median ms".padStart(9)} ${
      "ms".padStart(8)
    }`,
  );
  let failed = false;
  if (args.port !== 0) {
    // Somebody else's server (it must speak lesson 03's protocol): time it as it is.
    const count = countFlag(args.extra, "connections", 50, 2000);
    const plan = {
      model: { port: args.port },
      count,
      hostname: args.host,
      stepMs,
      untilMs,
      holdMs,
    };
    try {
      print(await measure(wb, plan));
    } catch (error) {
      failed = true;
      console.log(`yours, on port ${args.port}: failed: ${(error as Error).message}`);
    }
    Deno.exit(failed ? 1 : 0);
  }
  for (const model of models) {
    try {
      const plan = { model, count: counts[model], hostname: args.host, stepMs, untilMs, holdMs };
      print(await measure(wb, plan));
    } catch (error) {
      failed = true;
      console.log(`${LABELS[model].padEnd(26)} failed: ${(error as Error).message}`);
    }
  }
  Deno.exit(failed ? 1 : 0);
}

if ("WorkerGlobalScope" in globalThis) workerMain();
else if (import.meta.main && Deno.args[0] === CHILD_FLAG) await childMain();
else if (import.meta.main) await main();
