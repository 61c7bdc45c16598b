/**
 * Lesson 11's benchmark: `deno task run 11 bench` (your servers), or with
 * `--solution` (the reference ones). Prints figures; asserts nothing.
 *
 * 1. What ONE wait costs against the number of idle descriptors it watches.
 *    N idle fds (duplicates of the read end of a pipe nobody writes to) plus
 *    one fd that is always ready; every call returns at once with that one.
 *    select and poll hand the kernel the whole list each call and the kernel
 *    checks every entry; epoll_wait only looks at its ready list. The calls
 *    go through the raw bindings with prebuilt buffers, so the figures are
 *    the kernel's work plus one FFI call; the last column is epoll_wait on
 *    an FFI worker thread, the way the lesson's servers wait.
 * 2. Throughput of the echo servers of multiplex.ts against an echo server on
 *    Deno.listen, in the same run, with the same clients (Deno sockets in this
 *    process, on the same thread as every server here).
 *
 * Flags: `--quick` measures less (a smoke run); `--chart DIR` also draws the
 * wait table as `DIR/11-wait-cost.svg` (the catalogue lets this program write
 * docs/charts only; without the flag it writes nothing).
 *
 * @module
 */
import {
  close,
  EPOLL_CTL_ADD,
  epollCreate,
  epollCtl,
  EPOLLIN,
  epollWait,
  epollWaitAsync,
  F_DUPFD_CLOEXEC,
  FD_SET_BYTES,
  FD_SETSIZE,
  FdSet,
  ffiAvailable,
  getrlimit,
  pipe,
  POLLFD_SIZE,
  POLLIN,
  raiseFileLimit,
  sys,
  TIMEVAL_SIZE,
  write,
} from "workbook/libc";
import { chartDirFlag, type ChartSpec, machineNote, runCommand, writeChart } from "workbook/chart";
import { type EchoKind, startEchoServer } from "./multiplex.ts";

const QUICK = Deno.args.includes("--quick");
const CHART_DIR = chartDirFlag(Deno.args);
const SIZES = [10, 100, 500, 1000, 10_000];
/** Time spent measuring one cell of the wait table. */
const CELL_MS = QUICK ? 30 : 150;

// ---------------------------------------------------------------------------
// 1. The cost of one wait
// ---------------------------------------------------------------------------

/** Calls `fn` repeatedly for about `CELL_MS` and returns microseconds per call. */
async function microsPerCall(fn: () => unknown | Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await fn(); // warm up
  let calls = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < CELL_MS && calls < 200_000) {
    for (let i = 0; i < 16; i++) await fn();
    calls += 16;
    elapsed = performance.now() - started;
  }
  return (elapsed * 1000) / calls;
}

interface WaitRow {
  n: number;
  select?: number;
  poll?: number;
  epoll?: number;
  epollThread?: number;
  why?: string;
}

async function measureWaits(n: number, idle: number, ready: number): Promise<WaitRow> {
  const dups: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { value, errno } = sys.fcntl(idle, F_DUPFD_CLOEXEC, 0);
      if (value < 0) return { n, why: `could not open ${n} descriptors (errno ${errno})` };
      dups.push(value);
    }
    const fds = [...dups, ready];
    const row: WaitRow = { n };

    // select: a master fd_set copied into the working one before each call
    // (select overwrites it), and a zero timeval (just look).
    if (Math.max(...fds) < FD_SETSIZE) {
      const master = new FdSet();
      for (const fd of fds) master.add(fd);
      const working = new Uint8Array(FD_SET_BYTES);
      const zero = new Uint8Array(TIMEVAL_SIZE);
      const nfds = Math.max(...fds) + 1;
      row.select = await microsPerCall(() => {
        working.set(master.bytes);
        zero.fill(0);
        return sys.select(nfds, working, null, null, zero);
      });
    }

    // poll: one prebuilt array of struct pollfd; the kernel copies it in each call.
    const pollfds = new Uint8Array(fds.length * POLLFD_SIZE);
    const view = new DataView(pollfds.buffer);
    fds.forEach((fd, i) => {
      view.setInt32(i * POLLFD_SIZE, fd, true);
      view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
    });
    row.poll = await microsPerCall(() => sys.poll(pollfds, fds.length, 0));

    // epoll: register once, then every wait returns the one ready fd.
    const epfd = epollCreate();
    try {
      for (const fd of fds) epollCtl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN);
      row.epoll = await microsPerCall(() => epollWait(epfd, 64, 0));
      row.epollThread = await microsPerCall(() => epollWaitAsync(epfd, 64, 0));
    } finally {
      close(epfd);
    }
    return row;
  } finally {
    for (const fd of dups) sys.close(fd);
  }
}

function cell(value: number | undefined, width: number, missing: string): string {
  return (value === undefined ? missing : value.toFixed(value < 10 ? 2 : 1)).padStart(width);
}

async function waitTable(): Promise<WaitRow[]> {
  const { soft, hard } = raiseFileLimit();
  console.log(
    `descriptor limit: soft ${soft}, hard ${hard} (the soft limit was raised to the hard one)\n`,
  );
  const [idleRead, idleWrite] = pipe(); // nobody writes: never ready
  const [readyRead, readyWrite] = pipe();
  write(readyWrite, new Uint8Array([1])); // never read: always ready
  const rows: WaitRow[] = [];
  try {
    console.log("one wait call, µs (N idle fds + 1 ready fd; the call returns the ready one)");
    console.log("       N    select      poll     epoll   epoll (worker thread)");
    for (const n of SIZES) {
      const row = n + 64 > soft
        ? { n, why: `needs ${n + 64} descriptors; the limit is ${soft}` }
        : await measureWaits(n, idleRead, readyRead);
      rows.push(row);
      if (row.why) {
        console.log(`${String(n).padStart(8)}  (skipped: ${row.why})`);
        continue;
      }
      console.log(
        `${String(n).padStart(8)}${cell(row.select, 10, "wall")}${cell(row.poll, 10, "-")}${
          cell(row.epoll, 10, "-")
        }${cell(row.epollThread, 24, "-")}`,
      );
    }
    console.log(
      '  ("wall": select cannot take fds past FD_SETSIZE = 1024, and this N needs them)\n',
    );
  } finally {
    for (const fd of [idleRead, idleWrite, readyRead, readyWrite]) close(fd);
  }
  return rows;
}

/** A horizontal bar chart on a log scale: one line per (N, call). */
function chart(rows: WaitRow[]): void {
  const values = rows.flatMap((r) => [r.select, r.poll, r.epoll]).filter((v) => v !== undefined);
  if (values.length === 0) return;
  const max = Math.log10(Math.max(...values) * 1.2);
  const min = Math.log10(Math.min(...values) / 2);
  const bar = (v: number) =>
    "█".repeat(Math.max(1, Math.round(((Math.log10(v) - min) / (max - min)) * 50)));
  console.log("the same, as bars (log scale):");
  for (const row of rows) {
    if (row.why) continue;
    for (
      const [name, value] of [["select", row.select], ["poll", row.poll], [
        "epoll",
        row.epoll,
      ]] as const
    ) {
      const label = `${String(row.n).padStart(6)} ${name.padEnd(6)}`;
      console.log(
        value === undefined ? `${label} (wall)` : `${label} ${bar(value)} ${value.toFixed(2)} µs`,
      );
    }
  }
  console.log("");
}

/** The wait table as a chart: µs per call against N, both on log scales, FD_SETSIZE marked. */
function waitChartSpec(rows: WaitRow[]): ChartSpec {
  const calls = [
    ["select", "select"],
    ["poll", "poll"],
    ["epoll", "epoll_wait"],
    ["epollThread", "epoll_wait on a worker thread"],
  ] as const;
  const values = rows.flatMap((row) =>
    calls.flatMap(([key, call]) => {
      const us = row[key];
      return us === undefined ? [] : [{ n: row.n, call, us: Number(us.toFixed(2)) }];
    })
  );
  const order = calls.map(([, call]) => call);
  const wall = { values: [{ n: FD_SETSIZE, label: "FD_SETSIZE = 1024: select stops" }] };
  return {
    width: 480,
    height: 300,
    title: {
      text: "Lesson 11: what one wait call costs, against the idle descriptors it watches",
      subtitle: [
        "N idle fds + 1 ready fd; each call returns the ready one. Log scales.",
        runCommand("11", "bench", import.meta.resolve("./multiplex.ts"), Deno.args),
        `${machineNote()} (shared, noisy: read the shape, not the digits)`,
      ],
    },
    layer: [
      {
        data: { values },
        mark: { type: "line", point: true },
        encoding: {
          x: {
            field: "n",
            type: "quantitative",
            scale: { type: "log" },
            axis: { title: "idle descriptors watched (N)", values: SIZES, format: "~s" },
          },
          y: {
            field: "us",
            type: "quantitative",
            scale: { type: "log" },
            axis: { title: "µs per call" },
          },
          color: {
            field: "call",
            type: "nominal",
            sort: order,
            scale: { domain: order },
            legend: { title: null, orient: "bottom", direction: "vertical", labelLimit: 300 },
          },
          strokeDash: {
            field: "call",
            type: "nominal",
            sort: order,
            scale: { domain: order, range: [[1, 0], [1, 0], [1, 0], [4, 3]] },
          },
        },
      },
      {
        data: wall,
        mark: { type: "rule", strokeDash: [2, 2], color: "#888" },
        encoding: { x: { field: "n", type: "quantitative" } },
      },
      {
        data: wall,
        mark: { type: "text", align: "left", baseline: "top", dx: 4, dy: 4, color: "#555" },
        encoding: {
          x: { field: "n", type: "quantitative" },
          y: { value: 0 },
          text: { field: "label" },
        },
      },
    ],
  };
}

// ---------------------------------------------------------------------------
// 2. Echo throughput
// ---------------------------------------------------------------------------

const CLIENTS = 8;
const BULK_BYTES = (QUICK ? 1 : 4) * 1024 * 1024; // per client
const ROUND_TRIPS = QUICK ? 100 : 500; // per client
const MESSAGE = new Uint8Array(64).fill(0x61);

/** An echo server on Deno's own sockets, for comparison. */
function startDenoEcho(): { addr: Deno.NetAddr; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        for (let at = 0; at < n;) at += await conn.write(buffer.subarray(at, n));
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serve(conn);
    }
  })();
  return {
    addr: listener.addr,
    async close() {
      listener.close();
      await loop.catch(() => {});
    },
  };
}

/** Sends `total` bytes and reads the same number back; resolves when all came back. */
async function bulk(conn: Deno.Conn, total: number): Promise<void> {
  const chunk = new Uint8Array(64 * 1024).fill(0x62);
  const writing = (async () => {
    for (let sent = 0; sent < total;) {
      const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
      for (let at = 0; at < piece.length;) at += await conn.write(piece.subarray(at));
      sent += piece.length;
    }
  })();
  const buffer = new Uint8Array(64 * 1024);
  for (let got = 0; got < total;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`the server closed after ${got} of ${total} bytes`);
    got += n;
  }
  await writing;
}

/** `count` request/echo round trips of one 64-byte message. */
async function pingPong(conn: Deno.Conn, count: number): Promise<void> {
  const buffer = new Uint8Array(MESSAGE.length);
  for (let i = 0; i < count; i++) {
    await conn.write(MESSAGE);
    for (let got = 0; got < MESSAGE.length;) {
      const n = await conn.read(buffer.subarray(got));
      if (n === null) throw new Error("the server closed during the round trips");
      got += n;
    }
  }
}

async function withClients(
  addr: { hostname: string; port: number },
  work: (conn: Deno.Conn) => Promise<void>,
): Promise<number> {
  const conns = await Promise.all(
    Array.from(
      { length: CLIENTS },
      () => Deno.connect({ hostname: addr.hostname, port: addr.port }),
    ),
  );
  const started = performance.now();
  try {
    await Promise.all(conns.map(work));
    return (performance.now() - started) / 1000;
  } finally {
    for (const conn of conns) conn.close();
  }
}

async function throughputTable(): Promise<void> {
  console.log(
    `echo throughput: ${CLIENTS} clients at once; bulk = ${BULK_BYTES / 1024 / 1024} MiB each ` +
      `in 64 KiB writes; round trips = ${ROUND_TRIPS} × 64 bytes each, one at a time`,
  );
  console.log("server                      bulk MiB/s   round trips/s");
  const rows: [
    string,
    () => { addr: { hostname: string; port: number }; close(): Promise<void> },
  ][] = [
    ...(["epoll", "epoll-et", "poll", "select"] as EchoKind[]).map((kind) =>
      [`${kind} (multiplex.ts)`, () => startEchoServer(kind)] as [
        string,
        () => ReturnType<typeof startEchoServer>,
      ]
    ),
    ["Deno.listen echo", startDenoEcho],
  ];
  for (const [name, start] of rows) {
    let server;
    try {
      server = start();
    } catch (error) {
      console.log(
        `${name.padEnd(26)}  (could not start: ${error instanceof Error ? error.message : error})`,
      );
      continue;
    }
    try {
      const bulkSeconds = await withClients(server.addr, (conn) => bulk(conn, BULK_BYTES));
      const tripSeconds = await withClients(server.addr, (conn) => pingPong(conn, ROUND_TRIPS));
      const mib = (CLIENTS * BULK_BYTES) / 1024 / 1024 / bulkSeconds;
      const trips = (CLIENTS * ROUND_TRIPS) / tripSeconds;
      console.log(
        `${name.padEnd(26)}${mib.toFixed(0).padStart(12)}${trips.toFixed(0).padStart(16)}`,
      );
    } catch (error) {
      console.log(
        `${name.padEnd(26)}  (failed: ${error instanceof Error ? error.message : error})`,
      );
    } finally {
      await server.close();
    }
  }
}

async function main() {
  const ffi = ffiAvailable();
  if (!ffi.ok) {
    console.error(`this benchmark calls libc through FFI: ${ffi.reason}`);
    Deno.exit(1);
  }
  const limit = getrlimit();
  console.log(
    `lesson 11 benchmark on ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}`,
  );
  const rows = await waitTable();
  chart(rows);
  if (CHART_DIR !== undefined) {
    console.log(`chart: ${await writeChart(CHART_DIR, "11-wait-cost", waitChartSpec(rows))}\n`);
  }
  await throughputTable();
  if (limit.soft !== getrlimit().soft) {
    console.log("\n(the raised descriptor limit lasts until this program ends)");
  }
}

if (import.meta.main) await main();
