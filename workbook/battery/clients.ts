/**
 * The battery's clients: a normal client that checks a server still serves,
 * per kind of protocol, and the small tools attacks are made of. Every wait
 * is bounded; every address is loopback.
 *
 * @module
 */
import { connectAndReset } from "../harness/probe.ts";
import { Transcript } from "../harness/transcript.ts";
import type { Listening } from "./program.ts";

/** How a program talks, so the battery knows what "served" means for it. */
export type ProtocolKind =
  | "greeting" // writes something to each client, then closes
  | "reply" // answers each line with a line
  | "reply-at-eof" // answers once the client half-closes
  | "broadcast" // a line from one client reaches the others
  | "frames" // echoes 4-byte big-endian length-prefixed frames
  | "udp-echo" // each datagram back to its sender
  | "udp-request" // "ID\nPAYLOAD" answered by "ID\n…"
  | "udp-chat"; // a datagram from one member reaches the others

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Resolves after `ms`, or rejects with `what` when the promise is slower. */
export async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects over TCP (a refused or failed connection rejects). */
export function connect(at: Listening): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: at.hostname, port: at.port });
}

/** Closes without caring whether it is already closed. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Connects, optionally sends `first`, then resets (RST) like a crashed client. */
export async function resetAfter(at: Listening, first?: Uint8Array): Promise<void> {
  await connectAndReset(at, "battery", new Transcript(), first);
}

/** Reads until `done(text so far, bytes, newlines)` holds or the peer ends; returns the text. */
export async function readUntil(
  conn: Deno.Conn,
  done: (text: string, bytes: number, lines: number) => boolean,
): Promise<{ text: string; bytes: number; lines: number; ended: boolean }> {
  const buffer = new Uint8Array(64 * 1024);
  let text = ""; // the first MiB, for matching; volume is counted, not kept
  let bytes = 0;
  let lines = 0;
  while (!done(text, bytes, lines)) {
    const n = await conn.read(buffer);
    if (n === null) return { text, bytes, lines, ended: true };
    bytes += n;
    for (let i = 0; i < n; i++) if (buffer[i] === 0x0a) lines++;
    if (text.length < 1 << 20) text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return { text, bytes, lines, ended: false };
}

/** Writes every byte (a Deno write may be partial). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** The hello a server needs from a client before it serves it (`/nick` for the chat), one entry a line. */
export function helloOf(hello: string[] | undefined, name: string): string[] {
  return (hello ?? []).map((line) => line.replaceAll("{name}", name));
}

/** The same hello as bytes for a stream: each line ends in `\n`. */
export function helloLines(hello: string[] | undefined, name: string): string {
  return helloOf(hello, name).map((line) => line + "\n").join("");
}

let served = 0;

/**
 * One normal client's whole exchange: true when the server served it within
 * `timeoutMs`, with how long it took. Never throws.
 */
export async function normalClient(
  kind: ProtocolKind,
  at: Listening,
  options: { hello?: string[]; timeoutMs?: number } = {},
): Promise<{ ok: boolean; ms: number; why?: string }> {
  const started = performance.now();
  const n = ++served;
  const opened: { close(): void }[] = [];
  try {
    await within(
      options.timeoutMs ?? 5000,
      "a normal client",
      exchange(kind, at, n, options, opened),
    );
    return { ok: true, ms: performance.now() - started };
  } catch (error) {
    return { ok: false, ms: performance.now() - started, why: String((error as Error).message) };
  } finally {
    opened.forEach(closeQuietly);
  }
}

async function exchange(
  kind: ProtocolKind,
  at: Listening,
  n: number,
  options: { hello?: string[] },
  opened: { close(): void }[],
): Promise<void> {
  const ping = `battery ping ${n}`;
  switch (kind) {
    case "greeting": {
      const conn = await connect(at);
      opened.push(conn);
      const { bytes } = await readUntil(conn, () => false);
      if (bytes === 0) throw new Error("the connection ended without a greeting");
      return;
    }
    case "reply":
    case "reply-at-eof": {
      const conn = await connect(at);
      opened.push(conn);
      await writeAll(conn, encoder.encode(helloLines(options.hello, `b${n}`) + ping + "\n"));
      if (kind === "reply-at-eof") await conn.closeWrite();
      const { bytes } = await readUntil(conn, (text) => text.includes("\n"));
      if (bytes === 0) throw new Error("no reply before the connection ended");
      return;
    }
    case "broadcast": {
      const a = await connect(at);
      opened.push(a);
      const b = await connect(at);
      opened.push(b);
      await writeAll(b, encoder.encode(helloLines(options.hello, `bb${n}`)));
      await writeAll(a, encoder.encode(helloLines(options.hello, `ba${n}`)));
      // A member joins when the server has read its hello; say it until the other hears it.
      const heard = readUntil(b, (text) => text.includes(ping));
      for (let tries = 0; tries < 20; tries++) {
        await writeAll(a, encoder.encode(ping + "\n"));
        const outcome = await Promise.race([
          heard,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100)),
        ]);
        if (outcome) {
          if (outcome.ended && !outcome.text.includes(ping)) throw new Error("ended unheard");
          return;
        }
      }
      const { text } = await heard;
      if (!text.includes(ping)) throw new Error("the other member never heard the line");
      return;
    }
    case "frames": {
      const conn = await connect(at);
      opened.push(conn);
      const payload = encoder.encode(ping);
      const frame = new Uint8Array(4 + payload.length);
      new DataView(frame.buffer).setUint32(0, payload.length);
      frame.set(payload, 4);
      await writeAll(conn, frame);
      const { bytes } = await readUntil(conn, (_, got) => got >= frame.length);
      if (bytes < frame.length) throw new Error("the frame did not come back");
      return;
    }
    case "udp-echo":
    case "udp-request":
    case "udp-chat": {
      const udpAt = { transport: "udp" as const, hostname: at.hostname, port: at.port };
      const a = Deno.listenDatagram({ transport: "udp", hostname: at.hostname, port: 0 });
      opened.push(a);
      const b = kind === "udp-chat"
        ? Deno.listenDatagram({ transport: "udp", hostname: at.hostname, port: 0 })
        : a;
      if (b !== a) opened.push(b);
      const payload = kind === "udp-request" ? `${n}\n${ping}` : ping;
      const heard = (async () => {
        while (true) {
          const [data] = await b.receive();
          if (decoder.decode(data).toLowerCase().includes(ping)) return;
        }
      })();
      heard.catch(() => {});
      for (let tries = 0; tries < 20; tries++) {
        if (kind === "udp-chat") {
          // Both join (each hello line is one datagram), then B speaks too.
          for (const [socket, name] of [[b, `bb${n}`], [a, `ba${n}`]] as const) {
            for (const line of helloOf(options.hello, name)) {
              await socket.send(encoder.encode(line), udpAt);
            }
          }
          await b.send(encoder.encode("hello"), udpAt);
        }
        await a.send(encoder.encode(payload), udpAt);
        const ok = await Promise.race([
          heard.then(() => true),
          new Promise<false>((resolve) => setTimeout(() => resolve(false), 100)),
        ]);
        if (ok) return;
      }
      await heard;
    }
  }
}
