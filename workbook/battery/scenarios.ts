/**
 * The hostile battery's scenarios: what the internet does to a server,
 * over loopback, each bounded in count and time. A scenario "held" when
 * the program is still running, a normal client is still served
 * afterwards (generous bounds), and the resource it attacks came back:
 * descriptors to their baseline, memory within a bound. Timings are
 * reported, never judged.
 *
 * @module
 */
import {
  closeQuietly,
  connect,
  helloLines,
  helloOf,
  normalClient,
  type ProtocolKind,
  readUntil,
  resetAfter,
  within,
  writeAll,
} from "./clients.ts";
import type { RunningProgram, StartOptions } from "./program.ts";

/** What a scenario knows about the program it attacks. */
export interface Target {
  program: RunningProgram;
  kind: ProtocolKind;
  hello?: string[];
  /** Starts a fresh instance (for scenarios that need their own limits). */
  restart(options: Pick<StartOptions, "nofile">): Promise<RunningProgram>;
  /** Megabytes for the volume scenario. */
  mib: number;
}

/** One row of the battery's table. */
export interface Outcome {
  held: boolean;
  /** The numbers behind the verdict, e.g. `fds 14 → 14, peak RSS +3 MiB`. */
  numbers: string[];
  /** Why it failed, for the learner. */
  why?: string;
}

/** A scenario: where it applies and what it does. */
export interface Scenario {
  name: string;
  applies(kind: ProtocolKind, profile: { oneAtATime?: boolean }): boolean;
  run(target: Target): Promise<Outcome>;
}

const encoder = new TextEncoder();
const MiB = 1024 * 1024;
const TCP: ProtocolKind[] = ["greeting", "reply", "reply-at-eof", "broadcast", "frames"];
const LINES: ProtocolKind[] = ["reply", "reply-at-eof", "broadcast"];
const UDP: ProtocolKind[] = ["udp-echo", "udp-request", "udp-chat"];

/** Bounded waiting for a condition on the program (e.g. descriptors back to baseline). */
async function settle(check: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return await check();
}

/** The checks every scenario ends with: alive, served, descriptors back. */
async function verdict(
  target: Target,
  before: { fds?: number; rssKiB?: number },
  extra: { held?: boolean; numbers?: string[]; why?: string; memoryBoundMiB?: number } = {},
): Promise<Outcome> {
  const { program } = target;
  const numbers = [...(extra.numbers ?? [])];
  const whys: string[] = extra.why ? [extra.why] : [];
  if (!program.alive) {
    return {
      held: false,
      numbers,
      why: `the program exited (code ${program.exited?.code}); its last lines:\n` +
        program.tail(8).join("\n"),
    };
  }
  const served = await normalClient(target.kind, program.address, { hello: target.hello });
  numbers.push(
    served.ok ? `normal client ${Math.round(served.ms)} ms` : "normal client NOT served",
  );
  if (!served.ok) whys.push(`a normal client was not served afterwards (${served.why})`);
  if (before.fds !== undefined) {
    const back = await settle(async () => (await program.descriptors() ?? 0) <= before.fds! + 1);
    const after = await program.descriptors();
    numbers.push(`fds ${before.fds} → ${after}`);
    if (!back) whys.push(`descriptors did not return to ${before.fds} (now ${after})`);
  }
  const memory = await program.memory();
  if (memory && before.rssKiB !== undefined) {
    const growth = (memory.peakKiB - before.rssKiB) / 1024;
    numbers.push(`peak RSS +${growth.toFixed(0)} MiB`);
    if (extra.memoryBoundMiB !== undefined && growth > extra.memoryBoundMiB) {
      whys.push(`memory grew by ${growth.toFixed(0)} MiB (bound ${extra.memoryBoundMiB} MiB)`);
    }
  }
  return {
    held: (extra.held ?? true) && whys.length === 0 && program.alive,
    numbers,
    why: whys.join("; ") || undefined,
  };
}

async function baseline(program: RunningProgram) {
  return { fds: await program.descriptors(), rssKiB: (await program.memory())?.rssKiB };
}

/** Every scenario, in the order the table shows them. */
export const scenarios: Scenario[] = [
  {
    name: "resets before accept (50 at once)",
    applies: (kind) => TCP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      await Promise.allSettled(
        Array.from({ length: 50 }, () => resetAfter(target.program.address)),
      );
      return await verdict(target, before);
    },
  },
  {
    name: "resets mid-message (20)",
    applies: (kind) => TCP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const half = encoder.encode("half a line, then the client dies");
      for (let i = 0; i < 20; i++) await resetAfter(target.program.address, half).catch(() => {});
      return await verdict(target, before);
    },
  },
  {
    name: "half-close after a line",
    applies: (kind) => LINES.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const conn = await connect(target.program.address);
      let ended = false;
      let bytes = 0;
      try {
        await writeAll(
          conn,
          encoder.encode(helloLines(target.hello, "halfclose") + "last words\n"),
        );
        await conn.closeWrite();
        ({ ended, bytes } = await within(5000, "the end", readUntil(conn, () => false)));
      } catch {
        // The verdict says what did not happen.
      } finally {
        closeQuietly(conn);
      }
      return await verdict(target, before, {
        held: ended,
        numbers: [`${bytes} bytes back, then ${ended ? "EOF" : "no EOF within 5 s"}`],
        why: ended ? undefined : "after the client's half-close the server never closed its side",
      });
    },
  },
  {
    name: "slowloris (30 byte-a-second clients) beside normal ones",
    applies: (kind, profile) => TCP.includes(kind) && !profile.oneAtATime,
    async run(target) {
      const before = await baseline(target.program);
      const slow: Deno.Conn[] = [];
      for (let i = 0; i < 30; i++) slow.push(await connect(target.program.address));
      let stop = false;
      const dripping = (async () => {
        for (let tick = 0; tick < 40 && !stop; tick++) {
          await Promise.allSettled(slow.map((c) => c.write(encoder.encode("x"))));
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      const latencies: number[] = [];
      let unserved = 0;
      for (let i = 0; i < 3; i++) {
        const r = await normalClient(target.kind, target.program.address, { hello: target.hello });
        if (r.ok) latencies.push(Math.round(r.ms));
        else unserved++;
      }
      stop = true;
      await dripping;
      slow.forEach(closeQuietly);
      return await verdict(target, before, {
        held: unserved === 0,
        numbers: [`during the attack: ${latencies.join(", ") || "-"} ms, ${unserved} unserved`],
        why: unserved ? `${unserved} of 3 normal clients were not served during the attack` : "",
      });
    },
  },
  {
    name: "oversized message (8 MiB line without newline, or a frame announcing 1 GiB)",
    applies: (kind) => LINES.includes(kind) || kind === "frames",
    async run(target) {
      const before = await baseline(target.program);
      const conn = await connect(target.program.address);
      let sent = 0;
      try {
        const chunk = encoder.encode("x".repeat(64 * 1024));
        // A length header of 2^30: a reader that trusts it waits for (and buffers) a gigabyte.
        if (target.kind === "frames") await writeAll(conn, new Uint8Array([0x40, 0, 0, 0]));
        await within(
          10_000,
          "sending",
          (async () => {
            for (; sent < 8 * MiB; sent += chunk.length) await writeAll(conn, chunk);
          })(),
        );
      } catch {
        // A server that hangs up or stops reading is allowed to.
      } finally {
        closeQuietly(conn);
      }
      return await verdict(target, before, {
        numbers: [`${(sent / MiB).toFixed(2)} MiB accepted`],
        memoryBoundMiB: 32,
      });
    },
  },
  {
    name: "invalid UTF-8 and NUL",
    applies: (kind) => LINES.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const conn = await connect(target.program.address);
      try {
        await writeAll(conn, encoder.encode(helloLines(target.hello, "bytes")));
        await writeAll(conn, new Uint8Array([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x00, 0x0a]));
        await within(2000, "a reply", readUntil(conn, (text) => text.length > 0)).catch(() => {});
      } finally {
        closeQuietly(conn);
      }
      return await verdict(target, before);
    },
  },
  {
    name: "many short connections (300)",
    applies: (kind) => TCP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      let failed = 0;
      for (let i = 0; i < 300; i++) {
        try {
          const conn = await connect(target.program.address);
          if (target.kind !== "greeting" && target.kind !== "frames") {
            await conn.write(encoder.encode("short\n")).catch(() => 0);
          }
          closeQuietly(conn);
        } catch {
          failed++;
        }
      }
      return await verdict(target, before, {
        held: failed === 0,
        numbers: [`${300 - failed} of 300 connected`],
        why: failed ? `${failed} connections were refused or failed` : undefined,
      });
    },
  },
  {
    name: "descriptor exhaustion (limit 64, 80 clients)",
    applies: (kind) => TCP.includes(kind),
    async run(target) {
      const program = await target.restart({ nofile: 64 });
      const held: Deno.Conn[] = [];
      const logBefore = program.logLines;
      const cpuBefore = await program.cpuTicks() ?? 0;
      let refused = 0;
      for (let i = 0; i < 80; i++) {
        try {
          held.push(await within(2000, "connect", connect(program.address)));
        } catch {
          refused++;
        }
      }
      // Hold them a second: a loop that spins on EMFILE burns CPU and floods its log here.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const cpuAfter = await program.cpuTicks();
      const cpuMs = cpuAfter === undefined ? "?" : (cpuAfter - cpuBefore) * 10;
      const logged = program.logLines - logBefore;
      held.forEach(closeQuietly);
      const sub = { ...target, program };
      const outcome = await verdict(sub, {}, {
        numbers: [
          `${80 - refused} connected`,
          `CPU ${cpuMs} ms in the 1 s hold`,
          `${logged} log lines`,
        ],
      });
      if (logged > 1000) {
        outcome.held = false;
        outcome.why = [outcome.why, `it logged ${logged} lines: a loop retrying accept at once`]
          .filter(Boolean).join("; ");
      }
      await program.stop();
      return outcome;
    },
  },
  {
    name: "a reader that never reads",
    applies: (kind, profile) => (kind === "reply" || kind === "broadcast") && !profile.oneAtATime,
    async run(target) {
      const before = await baseline(target.program);
      const conn = await connect(target.program.address);
      let sent = 0;
      const line = encoder.encode("never read this reply ".repeat(40) + "\n");
      try {
        await writeAll(conn, encoder.encode(helloLines(target.hello, "deaf")));
        await within(
          10_000,
          "sending",
          (async () => {
            while (sent < 64 * MiB) {
              await writeAll(conn, line);
              sent += line.length;
            }
          })(),
        );
      } catch {
        // The server stopped reading (back-pressure) or hung up: both are fine.
      }
      // Judge while the deaf client is still connected: others must be served now.
      const outcome = await verdict(target, before, {
        numbers: [`${(sent / MiB).toFixed(1)} MiB pushed`],
        memoryBoundMiB: 64,
      });
      closeQuietly(conn);
      return outcome;
    },
  },
  {
    name: "volume through (MiB of lines, every line answered)",
    applies: (kind) => kind === "reply",
    async run(target) {
      const before = await baseline(target.program);
      const conn = await connect(target.program.address);
      const line = encoder.encode("v".repeat(511) + "\n");
      const lines = Math.floor((target.mib * MiB) / line.length);
      const started = performance.now();
      let answered = 0;
      let why: string | undefined;
      try {
        await writeAll(conn, encoder.encode(helloLines(target.hello, "bulk")));
        const reading = readUntil(conn, (_text, _bytes, newlines) => {
          answered = newlines;
          return answered >= lines;
        });
        reading.catch(() => {}); // awaited below; a hang-up ends it early
        const batch = new Uint8Array(line.length * 128);
        for (let i = 0; i < 128; i++) batch.set(line, i * line.length);
        await within(
          90_000,
          "the volume",
          (async () => {
            for (let sent = 0; sent < lines; sent += 128) {
              await writeAll(
                conn,
                sent + 128 <= lines ? batch : batch.subarray(0, (lines - sent) * line.length),
              );
            }
            await reading;
          })(),
        );
      } catch (error) {
        why = (error as Error).message;
      } finally {
        closeQuietly(conn);
      }
      const seconds = (performance.now() - started) / 1000;
      return await verdict(target, before, {
        held: answered >= lines,
        numbers: [
          `${answered} of ${lines} lines answered, ${(target.mib / seconds).toFixed(0)} MiB/s`,
        ],
        why: answered >= lines
          ? undefined
          : `only ${answered} of ${lines} lines were answered (${why})`,
      });
    },
  },
  {
    name: "maximum-size datagram (65,507 bytes)",
    applies: (kind) => UDP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const { hostname, port } = target.program.address;
      const a = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
      const b = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
      const to = { transport: "udp" as const, hostname, port };
      let answer = "nothing came back";
      // One receive loop per socket for the whole scenario (a socket takes one receive at a time).
      const arrivals: { socket: "a" | "b"; at: number; length: number }[] = [];
      const collect = (socket: Deno.DatagramConn, name: "a" | "b") =>
        (async () => {
          while (true) {
            const [data] = await socket.receive();
            arrivals.push({ socket: name, at: performance.now(), length: data.length });
          }
        })().catch(() => {});
      const collecting = [collect(a, "a"), collect(b, "b")];
      try {
        if (target.kind === "udp-chat") {
          for (const socket of [a, b]) {
            for (const line of helloOf(target.hello ?? ["hello"], "big")) {
              await socket.send(encoder.encode(line), to);
            }
          }
          // The members' own join traffic is not the answer.
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const prefix = target.kind === "udp-request" ? "9\n" : "";
        const big = new Uint8Array(65_507).fill(0x62);
        big.set(encoder.encode(prefix));
        const sentAt = performance.now();
        await a.send(big, to);
        // Delivered (to the sender for an echo, to another member for a chat), or the sender
        // told why not: anything but silence.
        // An echo must give back every byte; a request server or a chat may answer with
        // anything (a notice that says why is an answer too).
        const whole = target.kind === "udp-echo" ? big.length : 1;
        const answered = () =>
          arrivals.find((x) =>
            x.at >= sentAt &&
            (x.socket === "a" ? x.length >= whole : x.length >= 60_000)
          );
        const deadline = sentAt + 2000;
        while (!answered() && performance.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const found = answered();
        const cut = arrivals.find((x) => x.at >= sentAt && x.socket === "a");
        if (!found && cut) answer = `the sender got only ${cut.length} of ${big.length} bytes back`;
        if (found) {
          answer = found.socket === "a"
            ? `the sender got ${found.length} bytes back`
            : `another member got ${found.length} bytes`;
        }
      } finally {
        a.close();
        b.close();
        await Promise.all(collecting);
      }
      const ok = answer !== "nothing came back" && !answer.includes(" only ");
      return await verdict(target, before, {
        held: ok,
        numbers: [answer],
        why: ok
          ? undefined
          : answer.includes(" only ")
          ? "a maximum-size datagram came back cut: receive into a buffer of 65,507 bytes"
          : "a maximum-size datagram vanished: nobody got it and the sender was not told",
      });
    },
  },
  {
    name: "flood (5,000 datagrams)",
    applies: (kind) => UDP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const { hostname, port } = target.program.address;
      const s = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
      const to = { transport: "udp" as const, hostname, port };
      try {
        for (let i = 0; i < 5000; i++) await s.send(encoder.encode(`${i}\nflood ${i}`), to);
      } finally {
        s.close();
      }
      return await verdict(target, before, { numbers: ["5000 sent"], memoryBoundMiB: 32 });
    },
  },
  {
    name: "many source ports (300 strangers, one datagram each)",
    applies: (kind) => UDP.includes(kind),
    async run(target) {
      const before = await baseline(target.program);
      const { hostname, port } = target.program.address;
      const to = { transport: "udp" as const, hostname, port };
      const sockets = Array.from(
        { length: 300 },
        () => Deno.listenDatagram({ transport: "udp", hostname, port: 0 }),
      );
      let received = 0;
      const counting = sockets.map(async (s) => {
        try {
          while (true) {
            await s.receive();
            received++;
          }
        } catch {
          // Closed.
        }
      });
      for (const [i, s] of sockets.entries()) {
        await s.send(encoder.encode(`${i}\nstranger ${i}`), to);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      sockets.forEach((s) => s.close());
      await Promise.all(counting);
      const ratio = received / sockets.length;
      return await verdict(target, before, {
        held: ratio <= 1,
        numbers: [`300 in, ${received} out (×${ratio.toFixed(1)})`],
        why: ratio > 1
          ? "strangers who never joined were sent others' datagrams: the server amplifies"
          : undefined,
      });
    },
  },
];
