/**
 * Lesson 06 — a small bench (given, nothing to write): N clients each send M
 * messages through your chat server at once, and every client checks that it
 * got every other client's messages, each sender's in order. Prints the
 * deliveries and the wall time; it measures, it does not grade.
 *
 * ```sh
 * deno task run 6 bench                      # starts your server in-process
 * deno task run 6 bench --clients 100 --messages 20
 * deno task run 6 bench --port 9000          # a server that is already running
 * ```
 *
 * @module
 */
import { closeQuietly, isConnectionGone, parseProgramArgs, readLines, writeAll } from "workbook";
import { startChatServer } from "./chat_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One bench client: joins, then counts what it receives, per sender. */
class BenchClient {
  readonly received = new Map<string, number>();
  outOfOrder = 0;
  unexpected = 0;
  deliveries = 0;
  #reading: Promise<void> = Promise.resolve();
  #allIn: () => void = () => {};
  /** Resolves when this client has every message it should get. */
  readonly allIn: Promise<void>;

  constructor(readonly name: string, readonly conn: Deno.Conn, readonly expected: number) {
    this.allIn = new Promise((resolve) => this.#allIn = resolve);
  }

  static async join(addr: { hostname: string; port: number }, name: string, expected: number) {
    const conn = await Deno.connect(addr);
    const client = new BenchClient(name, conn, expected);
    const lines = readLines(conn, 64 * 1024);
    await writeAll(conn, encoder.encode(`/nick ${name}\n`));
    const first = await lines.next();
    const welcome = first.done ? "(connection closed)" : decoder.decode(first.value);
    if (welcome !== `* welcome ${name}`) {
      closeQuietly(conn);
      throw new Error(`${name} was not welcomed: the server said ${JSON.stringify(welcome)}`);
    }
    client.#reading = client.#read(lines);
    return client;
  }

  async #read(lines: AsyncGenerator<Uint8Array>): Promise<void> {
    try {
      for await (const bytes of lines) {
        const line = decoder.decode(bytes);
        if (line.startsWith("* ")) continue;
        const match = line.match(/^(\S+)> m(\d+)$/);
        if (!match || match[1] === this.name) {
          this.unexpected++;
          continue;
        }
        const next = this.received.get(match[1]) ?? 0;
        if (Number(match[2]) !== next) this.outOfOrder++;
        this.received.set(match[1], next + 1);
        if (++this.deliveries === this.expected) this.#allIn();
      }
    } catch (error) {
      if (!isConnectionGone(error)) throw error;
    }
  }

  async send(messages: number): Promise<void> {
    for (let k = 0; k < messages; k++) await writeAll(this.conn, encoder.encode(`m${k}\n`));
  }

  async close(): Promise<void> {
    closeQuietly(this.conn);
    await this.#reading;
  }
}

/** Runs the bench and prints its figures. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["clients", "messages", "timeout"]);
  const clients = Number(args.extra.clients ?? 50);
  const messages = Number(args.extra.messages ?? 50);
  const timeoutMs = Number(args.extra.timeout ?? 60_000);
  const server = args.port === 0
    ? startChatServer({ hostname: args.host, port: 0, maxQueuedBytes: 4 * 1024 * 1024 })
    : undefined;
  const addr = { hostname: args.host, port: server?.addr.port ?? args.port };
  const expectedEach = (clients - 1) * messages;
  const joinStart = performance.now();
  const members: BenchClient[] = [];
  for (let i = 0; i < clients; i++) {
    members.push(await BenchClient.join(addr, `b${i}-${Date.now() % 10000}`, expectedEach));
  }
  const joinMs = performance.now() - joinStart;
  const start = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finished = await Promise.race([
    Promise.all(members.map((m) => m.send(messages))).then(() =>
      Promise.all(members.map((m) => m.allIn))
    ).then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
  ]);
  clearTimeout(timer);
  const wallMs = performance.now() - start;
  const delivered = members.reduce((n, m) => n + m.deliveries, 0);
  const total = clients * expectedEach;
  const outOfOrder = members.reduce((n, m) => n + m.outOfOrder, 0);
  const unexpected = members.reduce((n, m) => n + m.unexpected, 0);
  await Promise.all(members.map((m) => m.close()));
  await server?.close();
  console.log(`${clients} clients × ${messages} messages through ${addr.hostname}:${addr.port}`);
  console.log(`  joined:     ${clients} clients in ${joinMs.toFixed(0)} ms`);
  console.log(
    `  delivered:  ${delivered} of ${total} messages` +
      (finished ? "" : ` (gave up after ${timeoutMs} ms)`),
  );
  console.log(
    `  wall time:  ${wallMs.toFixed(0)} ms from the first send to the last delivery ` +
      `(${Math.round(delivered / (wallMs / 1000))} deliveries/s)`,
  );
  console.log(`  order:      ${outOfOrder} out of order, ${unexpected} unexpected lines`);
  Deno.exit(finished && outOfOrder === 0 && unexpected === 0 ? 0 : 1);
}

if (import.meta.main) await main();
