/**
 * Lesson 10 — a CPU-bound handler and everyone else (given, nothing to write).
 * A server answers `ping\n` with `pong\n` at once, and `heavy\n` after about
 * `--heavy-ms` (default 150) of real computation. While a few heavy clients
 * keep it busy, `--light-clients` (default 4) ping every `--interval-ms`
 * (default 20) and time each answer. The server does the heavy work three ways:
 *
 * - `inline`: in the handler, on the event loop's one thread;
 * - `sliced`: on the same thread, but yielding to the event loop every
 *   `--slice-ms` (default 5): CPython's GIL hands over every 5 ms the same way;
 * - `worker`: in a `Worker` (another thread, another V8 isolate), awaited.
 *
 * The clients run in a Worker of their own: if they lived on the server's
 * thread, a frozen server would freeze the stopwatch too, and the delays
 * would never be seen.
 *
 * ```sh
 * deno task run 10 cpu                               # inline, sliced, worker
 * deno task run 10 cpu --heavy-ms 200 --heavy-clients 3 --heavy 4
 * deno task run 10 cpu --port 9000                   # time a server of your own (ping/heavy)
 * ```
 *
 * Every reply has a deadline (`--step-ms`, default 10 s), the light clients
 * stop after 2000 pings in all, and the counts are capped.
 *
 * @module
 */

import process from "node:process";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The light clients' ping count is capped: a load that never ends still ends here. */
const MAX_PINGS = 2000;

/**
 * CPU work that cannot be skipped: `iterations` steps of a xorshift generator,
 * summed. Nothing in it awaits, so nothing else on this thread runs meanwhile.
 */
function work(iterations: number, seed = 1): number {
  let x = seed | 0 || 1;
  let sum = 0;
  for (let i = 0; i < iterations; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    sum = (sum + (x & 0xff)) | 0;
  }
  return sum;
}

/**
 * How many iterations of {@linkcode work} take one millisecond of CPU here:
 * the median of a few runs of about `targetMs` each, once the JIT has compiled
 * it (short runs mislead: the JIT is not done yet). CPU time, not wall time:
 * on a busy machine the wall clock also counts the time other programs ran.
 */
function iterationsPerMs(targetMs: number): number {
  for (let round = 0; round < 5; round++) work(1_000_000, round + 1);
  let perMs = 1_000_000 / Math.max(1, timed(() => work(1_000_000)));
  const estimates: number[] = [];
  for (let round = 0; round < 5; round++) {
    const iterations = Math.max(1, Math.round(perMs * targetMs));
    perMs = iterations / Math.max(1, timed(() => work(iterations, round + 1)));
    estimates.push(perMs);
  }
  return estimates.slice(1).sort((a, b) => a - b)[2];
}

/** CPU time (user + system, in ms) this process used while `fn` ran. */
function timed(fn: () => unknown): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** Like {@linkcode work}, but gives the event loop a turn after every slice. */
async function slicedWork(iterations: number, perSlice: number): Promise<number> {
  let sum = 0;
  for (let done = 0; done < iterations; done += perSlice) {
    sum = (sum + work(Math.min(perSlice, iterations - done), done + 1)) | 0;
    await sleep(0); // a macrotask: timers and sockets run here
  }
  return sum;
}

/** A reader of `\n`-ended ASCII lines (this protocol's lines are short words). */
class Lines {
  #pending = "";
  readonly #buffer = new Uint8Array(1024);
  constructor(readonly conn: Deno.Conn) {}

  /** The next line without its `\n`, or null at end of stream. */
  async next(): Promise<string | null> {
    while (!this.#pending.includes("\n")) {
      if (this.#pending.length > 1024) throw new Error("line too long");
      const n = await this.conn.read(this.#buffer);
      if (n === null) return null;
      this.#pending += decoder.decode(this.#buffer.subarray(0, n));
    }
    const end = this.#pending.indexOf("\n");
    const line = this.#pending.slice(0, end).replace(/\r$/, "");
    this.#pending = this.#pending.slice(end + 1);
    return line;
  }
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** `promise`, or an error naming `step` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The little of a worker's global scope this file uses. */
interface WorkerScope {
  name: string;
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

// ── the compute worker: heavy work off the event loop's thread ──────────────

/** A job for the compute worker, and its answer. */
interface Job {
  id: number;
  iterations: number;
}
interface Done {
  id: number;
  sum: number;
  ms: number;
}

function computeMain(scope: WorkerScope): void {
  scope.onmessage = ({ data }: MessageEvent<Job>) => {
    const started = performance.now();
    const sum = work(data.iterations, data.id + 1);
    scope.postMessage({ id: data.id, sum, ms: performance.now() - started } satisfies Done);
  };
}

/** One compute worker, shared by all handlers; its jobs run one after another. */
class Compute {
  readonly #worker = new Worker(import.meta.url, { type: "module", name: "cpu-bench-compute" });
  readonly #waiting = new Map<number, (done: Done) => void>();
  #next = 0;

  constructor() {
    this.#worker.onmessage = ({ data }: MessageEvent<Done>) => {
      this.#waiting.get(data.id)?.(data);
      this.#waiting.delete(data.id);
    };
  }

  run(iterations: number): Promise<Done> {
    const id = this.#next++;
    const { promise, resolve } = Promise.withResolvers<Done>();
    this.#waiting.set(id, resolve);
    this.#worker.postMessage({ id, iterations } satisfies Job);
    return promise;
  }

  close(): void {
    this.#worker.terminate();
  }
}

// ── the clients' worker: the light pingers and the heavy clients ────────────

/** What the clients' worker is asked to do. */
interface Load {
  hostname: string;
  port: number;
  heavyClients: number;
  heavyEach: number;
  lightClients: number;
  intervalMs: number;
  /** With no heavy clients: how many pings each light client sends. */
  pings: number;
  stepMs: number;
}

/** What it measured. */
interface Measured {
  pings: number[];
  heavy: number[];
  /** How long the server says each heavy request's work took (its `done … in N ms`). */
  work: number[];
  wallMs: number;
  error?: string;
}

async function runLoad(load: Load): Promise<Measured> {
  const addr = { hostname: load.hostname, port: load.port };
  const result: Measured = { pings: [], heavy: [], work: [], wallMs: 0 };
  const conns: Deno.Conn[] = [];
  const connect = async () => {
    const conn = await within(Deno.connect(addr), load.stepMs, "connect");
    conns.push(conn);
    return { conn, lines: new Lines(conn) };
  };
  const ask = async (c: { conn: Deno.Conn; lines: Lines }, line: string) => {
    await writeAll(c.conn, `${line}\n`);
    const reply = await within(c.lines.next(), load.stepMs, `reply to ${line}`);
    if (reply === null) throw new Error(`the server closed instead of answering ${line}`);
    return reply;
  };
  const started = performance.now();
  try {
    const lights = await Promise.all(Array.from({ length: load.lightClients }, connect));
    // each connected and answered once before the clock starts
    await Promise.all(lights.map((light) => ask(light, "ping")));
    const heavyClients = await Promise.all(Array.from({ length: load.heavyClients }, connect));
    let heavyDone = load.heavyClients === 0;
    const heavy = Promise.all(heavyClients.map(async (client) => {
      for (let k = 0; k < load.heavyEach; k++) {
        const sent = performance.now();
        const reply = await ask(client, "heavy");
        const done = reply.match(/^done -?\d+ in (\d+) ms$/);
        if (!done) throw new Error(`heavy got ${JSON.stringify(reply)}`);
        result.heavy.push(performance.now() - sent);
        result.work.push(Number(done[1]));
      }
    })).finally(() => heavyDone = true);
    const pinging = Promise.all(lights.map(async (light) => {
      for (let sent = 0; result.pings.length < MAX_PINGS; sent++) {
        if (load.heavyClients === 0 ? sent >= load.pings : heavyDone) break;
        const started = performance.now();
        const reply = await ask(light, "ping");
        if (reply !== "pong") throw new Error(`ping got ${JSON.stringify(reply)}`);
        result.pings.push(performance.now() - started);
        await sleep(load.intervalMs);
      }
    }));
    await Promise.all([heavy, pinging]);
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
  }
  result.wallMs = performance.now() - started;
  return result;
}

function clientsMain(scope: WorkerScope): void {
  scope.onmessage = async ({ data }: MessageEvent<Load>) => {
    scope.postMessage(await runLoad(data));
  };
}

// ── the server (main thread) ────────────────────────────────────────────────

type Mode = "inline" | "sliced" | "worker";

/** The ping/heavy server, doing its heavy work the `mode` way. */
class CpuServer {
  readonly listener: Deno.TcpListener;
  readonly #handlers = new Set<Promise<void>>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #accepting: Promise<void>;

  constructor(
    hostname: string,
    readonly mode: Mode,
    readonly iterations: number,
    readonly perSlice: number,
    readonly compute?: Compute,
  ) {
    this.listener = Deno.listen({ hostname, port: 0 });
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource) return; // the listener closed
        continue;
      }
      this.#conns.add(conn);
      const handler = this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        this.#handlers.delete(handler);
      });
      this.#handlers.add(handler);
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const lines = new Lines(conn);
    try {
      for (let line = await lines.next(); line !== null; line = await lines.next()) {
        if (line === "ping") await writeAll(conn, "pong\n");
        else if (line === "heavy") {
          // `in N ms`: from the start of this request's work to its end, where it ran
          const started = performance.now();
          let { sum, ms } = this.mode === "worker"
            ? await this.compute!.run(this.iterations)
            : { sum: 0, ms: 0 };
          if (this.mode === "inline") sum = work(this.iterations);
          if (this.mode === "sliced") sum = await slicedWork(this.iterations, this.perSlice);
          if (this.mode !== "worker") ms = performance.now() - started;
          await writeAll(conn, `done ${sum} in ${Math.round(ms)} ms\n`);
        } else await writeAll(conn, "error: ping or heavy\n");
      }
    } catch {
      // a client gone, or closed by close(): this handler is over
    } finally {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
  }

  async close(): Promise<void> {
    this.listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
    await Promise.all(this.#handlers);
  }
}

/** Runs `load` in a fresh clients' worker; terminates it if it overstays `ms`. */
async function measureLoad(load: Load, ms: number): Promise<Measured> {
  const clients = new Worker(import.meta.url, { type: "module", name: "cpu-bench-clients" });
  try {
    const answer = new Promise<Measured>((resolve, reject) => {
      clients.onmessage = ({ data }: MessageEvent<Measured>) => resolve(data);
      clients.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`the clients' worker failed: ${event.message}`));
      };
    });
    clients.postMessage(load);
    return await within(answer, ms, "the whole load");
  } finally {
    clients.terminate();
  }
}

function numberFlag(extra: Record<string, string>, name: string, fallback: number, max: number) {
  const value = extra[name] === undefined ? fallback : Number(extra[name]);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    console.error(`--${name} must be a whole number from 0 to ${max}, got ${extra[name]}`);
    Deno.exit(2);
  }
  return value;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

function row(label: string, m: Measured): string {
  const ms = (v: number) => (Number.isNaN(v) ? "—" : v.toFixed(1)).padStart(8);
  const heavy = m.heavy.length
    ? `${m.heavy.length} in ${(m.wallMs / 1000).toFixed(2)} s; each waited ${
      ms(percentile(m.heavy, 0.5)).trim()
    } ms, worked ${ms(percentile(m.work, 0.5)).trim()} (medians)`
    : "—";
  return `${label.padEnd(34)} ${String(m.pings.length).padStart(5)} ${
    ms(percentile(m.pings, 0.5))
  } ${ms(percentile(m.pings, 0.95))} ${ms(Math.max(...m.pings))}   ${heavy}${
    m.error ? `\n  failed: ${m.error}` : ""
  }`;
}

async function main(): Promise<void> {
  const { parseProgramArgs } = await import("workbook");
  const args = parseProgramArgs(Deno.args, { port: 0 }, [
    "heavy-ms",
    "heavy-clients",
    "heavy",
    "light-clients",
    "interval-ms",
    "slice-ms",
    "step-ms",
  ]);
  const heavyMs = numberFlag(args.extra, "heavy-ms", 150, 1000);
  const heavyClients = numberFlag(args.extra, "heavy-clients", 2, 8);
  const heavyEach = numberFlag(args.extra, "heavy", 5, 20);
  const lightClients = Math.max(1, numberFlag(args.extra, "light-clients", 4, 16));
  const intervalMs = Math.max(1, numberFlag(args.extra, "interval-ms", 20, 1000));
  const sliceMs = Math.max(1, numberFlag(args.extra, "slice-ms", 5, 100));
  const stepMs = numberFlag(args.extra, "step-ms", 10_000, 120_000);
  // Another program's server decides its own heavy work: no need to calibrate ours.
  const perMs = args.port === 0 ? iterationsPerMs(heavyMs) : 0;
  const iterations = Math.round(perMs * heavyMs);
  const perSlice = Math.max(1, Math.round(perMs * sliceMs));
  // Every heavy request could wait for all the others: that bounds the whole load.
  const loadMs = stepMs * (heavyClients * heavyEach + 2);
  const load = (port: number, heavy: boolean): Load => ({
    hostname: args.host,
    port,
    heavyClients: heavy ? heavyClients : 0,
    lightClients,
    heavyEach,
    intervalMs,
    pings: 25,
    stepMs,
  });

  const heavyIs = args.port === 0
    ? `${heavyMs} ms of CPU here: ${iterations} iterations`
    : `whatever the server on port ${args.port} does`;
  console.log(
    `${lightClients} light client(s) ping every ${intervalMs} ms while ${heavyClients} heavy ` +
      `client(s) send ${heavyEach} heavy request(s) each, one after another\n(heavy = ${heavyIs}; ` +
      `${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno})\n`,
  );
  console.log(
    `${"the server".padEnd(34)} ${"pings".padStart(5)} ${"p50 ms".padStart(8)} ${
      "p95 ms".padStart(8)
    } ${"max ms".padStart(8)}   heavy requests`,
  );
  let failed = false;
  const show = (label: string, m: Measured) => {
    console.log(row(label, m));
    failed ||= m.error !== undefined;
  };

  if (args.port !== 0) {
    // Somebody else's server: time it as it is.
    show(`yours, on port ${args.port}`, await measureLoad(load(args.port, true), loadMs));
    Deno.exit(failed ? 1 : 0);
  }

  const compute = new Compute();
  await compute.run(iterations); // warm the worker's JIT: its first job would be slow
  const labels: Record<Mode, string> = {
    inline: "inline (on the event loop)",
    sliced: `inline, yielding every ${sliceMs} ms`,
    worker: "in a Worker (another thread)",
  };
  let first = true;
  for (const mode of ["inline", "sliced", "worker"] as const) {
    const server = new CpuServer(args.host, mode, iterations, perSlice, compute);
    try {
      if (first) {
        show(
          "no heavy load (baseline)",
          await measureLoad(load(server.listener.addr.port, false), loadMs),
        );
        first = false;
      }
      show(labels[mode], await measureLoad(load(server.listener.addr.port, true), loadMs));
    } finally {
      await server.close();
    }
  }
  compute.close();
  Deno.exit(failed ? 1 : 0);
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as WorkerScope;
  if (scope.name === "cpu-bench-compute") computeMain(scope);
  else clientsMain(scope);
} else if (import.meta.main) await main();
