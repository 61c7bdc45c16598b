/**
 * Lesson 4's benchmark: `deno task run 4 bench`. Prints figures; asserts nothing.
 *
 * Sends one file (`--mib 32` MiB of random bytes, written under
 * `.workbook/bench/` and removed at the end) over loopback six ways, to a
 * reader on the same machine that drains it with 64 KiB reads, and times each
 * way from the first byte sent to the reader's end of stream. Each way runs
 * `--runs 5` times; the table shows the median and the range.
 *
 * What it teaches: the cost of sending a file is per call, not per byte.
 *
 * @module
 */
import { parseProgramArgs, writeAll } from "workbook";

const DIR = ".workbook/bench";
const KIB = 1024;

function numberFlag(extra: Record<string, string>, name: string, fallback: number): number {
  const value = extra[name] === undefined ? fallback : Number(extra[name]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`--${name} must be a whole number ≥ 1, got ${extra[name]}`);
    Deno.exit(2);
  }
  return value;
}

/** One way of sending the file: resolves with the number of file reads it made. */
type Sender = (path: string, conn: Deno.Conn) => Promise<number | undefined>;

/** The plain loop: read a chunk of `size` bytes from the file, write all of it, repeat. */
function loop(size: number): Sender {
  return async (path, conn) => {
    using file = await Deno.open(path);
    const buffer = new Uint8Array(size);
    let reads = 0;
    for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
      reads++;
      await writeAll(conn, buffer.subarray(0, n));
    }
    return reads;
  };
}

const WAYS: [string, Sender][] = [
  ["loop, 1 KiB reads (`recv(1024)`-sized)", loop(KIB)],
  ["loop, 16 KiB reads", loop(16 * KIB)],
  ["loop, 64 KiB reads", loop(64 * KIB)],
  ["loop, 1 MiB reads", loop(1024 * KIB)],
  [
    "`file.readable.pipeTo(conn.writable)`",
    async (path, conn) => {
      const file = await Deno.open(path); // the readable closes it at its end
      await file.readable.pipeTo(conn.writable, { preventClose: true });
      return undefined; // the stream's reads are its own business (64 KiB each)
    },
  ],
  [
    "whole file read into memory, one write",
    async (path, conn) => {
      await writeAll(conn, await Deno.readFile(path));
      return 1;
    },
  ],
];

/** Sends the file once with `send`; resolves with the milliseconds until the reader saw EOF. */
async function timeOnce(
  listener: Deno.TcpListener,
  path: string,
  bytes: number,
  send: Sender,
): Promise<{ ms: number; reads: number | undefined }> {
  const accepted = listener.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const reader = await accepted;
  const started = performance.now();
  const draining = (async () => {
    const buffer = new Uint8Array(64 * KIB);
    let got = 0;
    for (let n = await reader.read(buffer); n !== null; n = await reader.read(buffer)) got += n;
    return got;
  })();
  try {
    const reads = await send(path, client);
    client.closeWrite();
    const got = await draining;
    if (got !== bytes) throw new Error(`the reader got ${got} of ${bytes} bytes`);
    return { ms: performance.now() - started, reads };
  } finally {
    client.close();
    reader.close();
  }
}

async function main() {
  const { extra } = parseProgramArgs(Deno.args, { port: 0 }, ["mib", "runs"]);
  const mib = numberFlag(extra, "mib", 32);
  const runs = numberFlag(extra, "runs", 5);
  const bytes = mib * 1024 * KIB;
  await Deno.mkdir(DIR, { recursive: true });
  const path = `${DIR}/send-${mib}mib.bin`;
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
  await Deno.writeFile(path, data);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(
    `lesson 4 benchmark on ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}: ` +
      `a ${mib} MiB file over loopback to a reader draining with 64 KiB reads, ` +
      `median of ${runs} runs (range in brackets)\n`,
  );
  console.log(
    `${"how".padEnd(40)}${"file reads".padStart(11)}${"time ms".padStart(20)}` +
      `${"MiB/s".padStart(22)}`,
  );
  try {
    for (const [name, send] of WAYS) {
      const times: number[] = [];
      let reads: number | undefined;
      for (let i = 0; i < runs; i++) {
        const run = await timeOnce(listener, path, bytes, send);
        times.push(run.ms);
        reads = run.reads;
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)];
      const rate = (ms: number) => (mib / (ms / 1000)).toFixed(0);
      console.log(
        name.padEnd(40) +
          (reads === undefined ? "(stream)" : String(reads)).padStart(11) +
          `${median.toFixed(0)} [${times[0].toFixed(0)}–${times.at(-1)!.toFixed(0)}]`.padStart(20) +
          `${rate(median)} [${rate(times.at(-1)!)}–${rate(times[0])}]`.padStart(22),
      );
    }
  } finally {
    listener.close();
    await Deno.remove(path);
  }
}

if (import.meta.main) await main();
