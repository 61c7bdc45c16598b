/**
 * The figures of lesson 10: `deno task run 10 bench` (add `--solution` for
 * the reference). Prints tables; nothing here is graded.
 *
 * 0. How a loop yields: turns of an empty loop that awaits a 0 ms timer,
 *    `setImmediate`, or a resolved promise, and whether a timer still runs.
 * 1. Waiting for data, two ways: your polling echo server, a poll()-based
 *    one (multiplexing: the kernel says which descriptor is ready), each
 *    serving the same clients. Counts the calls that found nothing.
 * 2. A blocking call on the main thread: your blockingEchoOnce waits for a
 *    client that a worker thread sends later; a 10 ms timer counts how often
 *    it got to run meanwhile.
 * 3. N slow requests (each handler takes `--delay-ms`) on your serial and
 *    your concurrent server: wall time ≈ N·t against ≈ t.
 *
 * Flags: `--clients 10 --delay-ms 50 --requests 5 --think-ms 20 --late-ms 300`;
 * `--chart DIR` also draws sections 1 and 3 as `DIR/10-polling-multiplexing.svg`
 * and `DIR/10-serial-concurrent.svg` (the catalogue lets this program write
 * docs/charts only; without the flag it writes nothing).
 *
 * @module
 */
import process from "node:process";
import { isTodoError, parseProgramArgs } from "workbook";
import { type ChartSpec, machineNote, runCommand, writeChart } from "workbook/chart";
import {
  accept,
  close,
  listenTcp,
  pollAsync,
  POLLIN,
  type PollRequest,
  read,
  setNonBlocking,
} from "workbook/libc";
import {
  blockingEchoOnce,
  listenNonBlocking,
  newPollingStats,
  pollingEchoServer,
  type PollingStats,
  sendAllNonBlocking,
  serveConcurrent,
  serveSerial,
} from "./io_models.ts";

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function numberFlag(extra: Record<string, string>, name: string, fallback: number): number {
  const value = extra[name] === undefined ? fallback : Number(extra[name]);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} must be a number ≥ 0, got ${extra[name]}`);
    Deno.exit(2);
  }
  return value;
}

/** CPU time (user + system) this process used while `fn` ran, and its wall time, in ms. */
async function measured<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; wallMs: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await fn();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { value, wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/** Echo clients: each sends `requests` messages, waits for each echo, thinks, then closes. */
async function echoClients(port: number, clients: number, requests: number, thinkMs: number) {
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const buffer = new Uint8Array(256);
      for (let r = 0; r < requests; r++) {
        const message = encoder.encode(`client ${c} request ${r}\n`);
        await conn.write(message);
        for (let got = 0; got < message.length;) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`client ${c}: the server closed early`);
          got += n;
        }
        await sleep(thinkMs);
      }
    } finally {
      conn.close();
    }
  }));
}

/**
 * The multiplexing reference (lesson 11 builds it properly): one poll() over
 * the listener and every connection, on an FFI worker thread so the event
 * loop stays free; then accept or read exactly the descriptors it reported.
 */
function multiplexedEchoServer(
  clients: number,
): { port: number; done: Promise<PollingStats & { waits: number }> } {
  const listener = listenTcp({ nonBlocking: true });
  const stats = { ...newPollingStats(), waits: 0 };
  const done = (async () => {
    const open = new Set<number>();
    const buffer = new Uint8Array(16 * 1024);
    let accepted = 0;
    try {
      while (accepted < clients || open.size > 0) {
        const watched: PollRequest[] = [...open].map((fd) => ({ fd, events: POLLIN }));
        if (accepted < clients) watched.unshift({ fd: listener.fd, events: POLLIN });
        stats.waits++;
        const revents = await pollAsync(watched, 1000);
        stats.rounds++;
        for (const [i, { fd }] of watched.entries()) {
          if (revents[i] === 0) continue;
          if (fd === listener.fd) {
            stats.acceptCalls++;
            const conn = accept(fd, { nonBlocking: true });
            if (conn === null) stats.wastedAccepts++;
            else {
              accepted++;
              open.add(conn);
            }
            continue;
          }
          stats.readCalls++;
          let n: number | null;
          try {
            n = read(fd, buffer);
          } catch {
            n = 0;
          }
          if (n === null) stats.wastedReads++;
          else if (n === 0) {
            open.delete(fd);
            close(fd);
          } else await sendAllNonBlocking(fd, buffer.subarray(0, n));
        }
      }
    } finally {
      close(listener.fd);
    }
    return stats;
  })();
  return { port: listener.port, done };
}

/** A table row: the first cell left-aligned, the others right-aligned. */
function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((cell, i) =>
    i === 0 ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i])
  ).join("  ");
}

async function benchYields(ms: number) {
  console.log(
    `\n0. How a loop yields: turns of an empty loop in ${ms} ms, and how often a 10 ms timer ` +
      `ran meanwhile (due ~${Math.floor(ms / 10)} times)`,
  );
  const widths = [34, 10, 12];
  console.log(row(["each turn awaits", "turns", "timer ran"], widths));
  const ways: [string, () => Promise<unknown>][] = [
    ["setTimeout(r, 0)  (macrotask)", () => new Promise((r) => setTimeout(r, 0))],
    ["setImmediate(r)   (macrotask)", () => new Promise((r) => setImmediate(r))],
    ["Promise.resolve() (microtask)", () => Promise.resolve()],
  ];
  for (const [name, yieldOnce] of ways) {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    await sleep(0);
    const started = performance.now();
    let turns = 0;
    while (performance.now() - started < ms) {
      await yieldOnce();
      turns++;
    }
    const ran = ticks;
    clearInterval(ticker);
    console.log(row([name, turns, ran], widths));
  }
}

/** What section 1 measured, for its chart. */
interface WaitingFigures {
  clients: number;
  requests: number;
  thinkMs: number;
  runs: { model: string; stats: PollingStats; cpuMs: number; wallMs: number }[];
}

async function benchWaiting(
  clients: number,
  requests: number,
  thinkMs: number,
): Promise<WaitingFigures> {
  console.log(
    `\n1. Waiting for data: ${clients} echo clients × ${requests} requests, ` +
      `${thinkMs} ms of thinking between requests`,
  );
  const listener = listenNonBlocking(0);
  const polled = await measured(async () => {
    // Promise.all: if your server fails, stop at once instead of waiting for echoes.
    const [stats] = await Promise.all([
      pollingEchoServer({ listener, clients }),
      echoClients(listener.port, clients, requests, thinkMs),
    ]);
    return stats;
  });
  close(listener.fd);
  const multiplexed = await measured(async () => {
    const server = multiplexedEchoServer(clients);
    await echoClients(server.port, clients, requests, thinkMs);
    return await server.done;
  });
  const widths = [22, 8, 8, 8, 8, 11, 8, 7];
  console.log(
    row(
      ["model", "accepts", "wasted", "reads", "wasted", "wasted/req", "wall ms", "CPU ms"],
      widths,
    ),
  );
  const requestsServed = clients * requests;
  for (
    const [name, run] of [
      ["non-blocking polling", polled],
      ["multiplexing (poll)", multiplexed],
    ] as const
  ) {
    const s = run.value;
    const wasted = s.wastedAccepts + s.wastedReads;
    console.log(row([
      name,
      s.acceptCalls,
      s.wastedAccepts,
      s.readCalls,
      s.wastedReads,
      (wasted / requestsServed).toFixed(1),
      run.wallMs.toFixed(0),
      run.cpuMs.toFixed(0),
    ], widths));
  }
  console.log(
    `   polling: ${polled.value.rounds} rounds in ${polled.wallMs.toFixed(0)} ms ` +
      `(${(polled.value.rounds / (polled.wallMs / 1000)).toFixed(0)} rounds/s); ` +
      `multiplexing: ${multiplexed.value.waits} poll() waits. ` +
      "CPU ms counts the clients too (same process).",
  );
  return {
    clients,
    requests,
    thinkMs,
    runs: [
      {
        model: "non-blocking polling",
        stats: polled.value,
        cpuMs: polled.cpuMs,
        wallMs: polled.wallMs,
      },
      {
        model: "multiplexing (poll)",
        stats: multiplexed.value,
        cpuMs: multiplexed.cpuMs,
        wallMs: multiplexed.wallMs,
      },
    ],
  };
}

/** A client on a worker thread that connects after `delayMs` (a blob: no file needed). */
const LATE_CLIENT = `
self.onmessage = async ({ data }) => {
  await new Promise((resolve) => setTimeout(resolve, data.delayMs));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: data.port });
  await conn.write(new TextEncoder().encode("tea, please\\n"));
  await conn.closeWrite();
  const buffer = new Uint8Array(64);
  let total = 0;
  for (let n; (n = await conn.read(buffer)) !== null;) total += n;
  conn.close();
  self.postMessage(total);
};`;

async function benchBlocking(lateMs: number) {
  console.log(`\n2. A blocking call on the main thread: a client arrives after ${lateMs} ms`);
  const url = URL.createObjectURL(new Blob([LATE_CLIENT], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const echoed = new Promise<number>((resolve) => worker.onmessage = (e) => resolve(e.data));
  const listener = listenTcp(); // blocking
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  try {
    worker.postMessage({ port: listener.port, delayMs: lateMs });
    const started = performance.now();
    const n = blockingEchoOnce(listener.fd);
    const blockedMs = performance.now() - started;
    const ticksDuring = ticks;
    console.log(
      `   blockingEchoOnce held the main thread ${
        blockedMs.toFixed(0)
      } ms and echoed ${n} bytes; ` +
        `a 10 ms timer was due ~${Math.floor(blockedMs / 10)} times and ran ${ticksDuring} times`,
    );
    console.log(`   the client (on its own thread) got ${await echoed} bytes back`);
    // The same wait without blocking: the timer keeps running.
    setNonBlocking(listener.fd, true);
    const worker2 = new Worker(url, { type: "module" });
    const echoed2 = new Promise<number>((resolve) => worker2.onmessage = (e) => resolve(e.data));
    worker2.postMessage({ port: listener.port, delayMs: lateMs });
    ticks = 0;
    const started2 = performance.now();
    const stats = await pollingEchoServer({ listener, clients: 1 });
    const pollingMs = performance.now() - started2;
    console.log(
      `   the same wait in your polling loop: ${pollingMs.toFixed(0)} ms, the timer ran ${ticks} ` +
        `times (${
          stats.wastedAccepts + stats.wastedReads
        } wasted calls); client got ${await echoed2} bytes`,
    );
    worker2.terminate();
  } finally {
    clearInterval(ticker);
    close(listener.fd);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

/** What section 3 measured: each server's reply times, in ms from the start, sorted. */
interface ServerFigures {
  clients: number;
  delayMs: number;
  runs: { server: string; wallMs: number; replies: number[] }[];
}

async function benchServers(clients: number, delayMs: number): Promise<ServerFigures> {
  const figures: ServerFigures = { clients, delayMs, runs: [] };
  console.log(`\n3. ${clients} slow requests, each handler takes ${delayMs} ms`);
  const widths = [11, 8, 12, 13, 11, 12];
  console.log(
    row(["server", "wall ms", "first reply", "median reply", "last reply", "expected ≈"], widths),
  );
  for (const [name, serve] of [["serial", serveSerial], ["concurrent", serveConcurrent]] as const) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = serve(listener, async (conn) => {
      await sleep(delayMs);
      await conn.write(encoder.encode("done\n"));
    });
    const started = performance.now();
    const replies = await Promise.race([
      serving.then(() => {
        throw new Error(`your ${name} server returned while its listener was still open`);
      }),
      Promise.all(Array.from({ length: clients }, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
        const buffer = new Uint8Array(16);
        while (await conn.read(buffer) !== null) { /* until the server closes */ }
        conn.close();
        return performance.now() - started;
      })),
    ]);
    const wallMs = performance.now() - started;
    listener.close();
    await serving;
    replies.sort((a, b) => a - b);
    figures.runs.push({ server: name, wallMs, replies });
    const expected = name === "serial" ? `N·t = ${clients * delayMs}` : `t = ${delayMs}`;
    console.log(row([
      name,
      wallMs.toFixed(0),
      replies[0].toFixed(0),
      replies[Math.floor(replies.length / 2)].toFixed(0),
      replies.at(-1)!.toFixed(0),
      expected,
    ], widths));
  }
  return figures;
}

/** How each chart's subtitle ends: the command that produced it and where it ran. */
function provenance(): string[] {
  return [
    runCommand("10", "bench", import.meta.resolve("./io_models.ts"), Deno.args),
    `${machineNote()} (shared, noisy: read the shape, not the digits)`,
  ];
}

/** Section 1 as two bar charts: the calls each model made (useful or not), and its CPU time. */
function waitingChartSpec(figures: WaitingFigures): ChartSpec {
  const calls = figures.runs.flatMap(({ model, stats }) => {
    const wasted = stats.wastedAccepts + stats.wastedReads;
    return [
      { model, kind: "found nothing (EAGAIN)", calls: wasted },
      {
        model,
        kind: "returned a client or data",
        calls: stats.acceptCalls + stats.readCalls - wasted,
      },
    ];
  });
  const cpu = figures.runs.map(({ model, cpuMs }) => ({ model, cpuMs: Math.round(cpuMs) }));
  const model = { field: "model", type: "nominal", title: null, sort: null } as const;
  return {
    title: {
      text: "Lesson 10: waiting for data by polling, and by multiplexing",
      subtitle: [
        `${figures.clients} echo clients × ${figures.requests} requests, ` +
        `${figures.thinkMs} ms of thinking between requests; CPU counts the clients too.`,
        ...provenance(),
      ],
    },
    hconcat: [
      {
        width: 260,
        height: 160,
        data: { values: calls },
        mark: "bar",
        encoding: {
          y: model,
          x: {
            field: "calls",
            type: "quantitative",
            stack: "zero",
            title: "accept + read calls",
            axis: { tickCount: 5 },
          },
          color: {
            field: "kind",
            type: "nominal",
            title: null,
            scale: { range: ["#e45756", "#4c78a8"] },
            legend: { orient: "bottom", direction: "vertical" },
          },
        },
      },
      {
        width: 180,
        height: 160,
        data: { values: cpu },
        mark: "bar",
        encoding: {
          y: { ...model, axis: null },
          x: { field: "cpuMs", type: "quantitative", title: "CPU ms" },
          color: { value: "#72b7b2" },
        },
      },
    ],
  };
}

/** Section 3 as a chart: when each client got its reply, serial against concurrent. */
function serversChartSpec(figures: ServerFigures): ChartSpec {
  const values = figures.runs.flatMap(({ server, replies }) =>
    replies.map((ms, i) => ({ server, client: i + 1, ms: Math.round(ms) }))
  );
  const { clients, delayMs } = figures;
  return {
    width: 420,
    height: 260,
    title: {
      text: "Lesson 10: N slow requests on a serial and a concurrent server",
      subtitle: [
        `${clients} clients at once; each handler takes t = ${delayMs} ms. ` +
        `Serial: the k-th reply after ≈ k·t; concurrent: all after ≈ t.`,
        ...provenance(),
      ],
    },
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: {
        field: "client",
        type: "quantitative",
        title: "clients, in the order their replies came",
        axis: { tickMinStep: 1 },
      },
      y: { field: "ms", type: "quantitative", title: "ms from the start to the reply" },
      color: {
        field: "server",
        type: "nominal",
        title: null,
        legend: { orient: "top-left" },
      },
    },
  };
}

async function main() {
  const { extra } = parseProgramArgs(Deno.args, { port: 0 }, [
    "clients",
    "delay-ms",
    "requests",
    "think-ms",
    "late-ms",
    "chart",
  ]);
  const clients = Math.max(1, numberFlag(extra, "clients", 10));
  const delayMs = numberFlag(extra, "delay-ms", 50);
  const requests = Math.max(1, numberFlag(extra, "requests", 5));
  const thinkMs = numberFlag(extra, "think-ms", 20);
  const lateMs = numberFlag(extra, "late-ms", 300);
  console.log(`lesson 10 figures (Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch})`);
  const yields = await section(() => benchYields(250));
  const waiting = await section(() => benchWaiting(clients, requests, thinkMs));
  const blocking = await section(() => benchBlocking(lateMs));
  const servers = await section(() => benchServers(clients, delayMs));
  const skipped = [yields, waiting, blocking, servers].some((s) => s === SKIPPED);
  if (extra.chart !== undefined) {
    console.log("");
    if (waiting !== SKIPPED) {
      const path = await writeChart(
        extra.chart,
        "10-polling-multiplexing",
        waitingChartSpec(waiting),
      );
      console.log(`chart: ${path}`);
    }
    if (servers !== SKIPPED) {
      const path = await writeChart(extra.chart, "10-serial-concurrent", serversChartSpec(servers));
      console.log(`chart: ${path}`);
    }
  }
  // A section cut short by a TodoError leaves its clients waiting: end here, not when they give up.
  if (skipped) Deno.exit(0);
}

/** What `section` returns for a section cut short by a function you have not written yet. */
const SKIPPED = Symbol("skipped");

/** Runs one section and returns its figures, or `SKIPPED` when it met a `TodoError`. */
async function section<T>(run: () => Promise<T>): Promise<T | typeof SKIPPED> {
  try {
    return await run();
  } catch (error) {
    if (!isTodoError(error)) throw error;
    console.log(`   skipped: ${error.message} (docs/10-io-models.md)`);
    return SKIPPED;
  }
}

if (import.meta.main) await main();
