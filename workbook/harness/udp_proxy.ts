/**
 * A lossy UDP proxy: the network misbehaving on purpose, reproducibly.
 *
 * Clients send their datagrams to the proxy's {@linkcode UdpProxy.addr}; the
 * proxy forwards them to the target from a socket of its own per client (so
 * the target sees one sender address per client, as it would through a NAT)
 * and forwards the target's replies back to that client. On the way, in both
 * directions, it may
 *
 * - **drop** a datagram (it never arrives),
 * - **duplicate** it (a second copy follows a little later),
 * - **reorder** it (hold it back and send it after the next datagram of the
 *   same direction, or after a short delay when no other datagram comes).
 *
 * Every decision comes from a seeded generator, one per client and direction,
 * so the same seed and the same datagrams give the same faults: a failing run
 * can be replayed. Only the timing of the network is not under its control.
 *
 * ```
 * client A ──▶ proxy.addr ──(flow 1 socket)──▶ target
 * client A ◀── proxy.addr ◀──(flow 1 socket)── target
 * client B ──▶ proxy.addr ──(flow 2 socket)──▶ target
 * ```
 *
 * A suite makes one with `new UdpProxy({ target: server.addr, seed, drop: 0.2,
 * duplicate: 0.1, reorder: 0.1 })`, points the learner's client at
 * `proxy.addr`, and reads `proxy.stats` and `proxy.decisions(n, direction)`
 * afterwards; {@linkcode UdpProxy} has a runnable example.
 *
 * @module
 */
import { seededRandom } from "./bytes.ts";
import type { Transcript } from "./transcript.ts";

/** Which way a datagram travels through the proxy. */
export type Direction = "to-target" | "to-client";

/** What the proxy did with one datagram. */
export type Fault = "pass" | "drop" | "duplicate" | "hold";

/** Settings of a {@linkcode UdpProxy}. Rates are probabilities from 0 to 1. */
export interface UdpProxyOptions {
  /** Where datagrams from clients go. */
  target: { hostname: string; port: number };
  /** Seed of the fault decisions: same seed, same faults. */
  seed: number;
  /** Chance a datagram is dropped. Default 0. */
  drop?: number;
  /** Chance a datagram that was not dropped is sent twice. Default 0. */
  duplicate?: number;
  /** Chance a datagram that was not dropped is held back and overtaken. Default 0. */
  reorder?: number;
  /**
   * How long a held datagram waits for the next one to overtake it before it goes anyway, and
   * the longest delay of a duplicate copy (random from 1 ms up), in ms. Default 15.
   */
  holdMs?: number;
  /** Apply faults only in one direction; the other passes untouched. Default: both. */
  only?: Direction;
  /** Records each fault as a note (not each datagram) when given. */
  transcript?: Transcript;
  /** Name in the transcript. Default `proxy`. */
  label?: string;
}

/** What a proxy has done so far. */
export interface UdpProxyStats {
  /** Datagrams received from either side. */
  received: number;
  /** Datagrams sent on (copies included). */
  forwarded: number;
  /** Datagrams dropped. */
  dropped: number;
  /** Datagrams sent twice. */
  duplicated: number;
  /** Datagrams held back to be overtaken. */
  reordered: number;
}

interface Held {
  data: Uint8Array;
  timer: ReturnType<typeof setTimeout>;
}

/** One client's path through the proxy. */
interface Flow {
  index: number;
  client: Deno.NetAddr;
  upstream: Deno.DatagramConn;
  random: Record<Direction, () => number>;
  held: Record<Direction, Held | undefined>;
  decisions: Record<Direction, Fault[]>;
  pump: Promise<void>;
}

const ADDRESS_TEXT = (a: { hostname: string; port: number }) =>
  a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;

/** Mixes a flow number and a direction into the seed (so each stream is independent). */
function streamSeed(seed: number, flow: number, direction: Direction): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(flow, 0xc2b2ae35) +
    (direction === "to-target" ? 0x27d4eb2f : 0x165667b1)) >>> 0;
}

/**
 * A UDP proxy on 127.0.0.1 that drops, duplicates and reorders datagrams,
 * seeded. See the module doc for the picture.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UdpProxy } from "./udp_proxy.ts";
 *
 * const udp = () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const server = udp(); // echoes one datagram
 * const echoing = server.receive().then(([data, from]) => server.send(data, from));
 * const proxy = new UdpProxy({ target: server.addr as Deno.NetAddr, seed: 7, drop: 0 });
 * const client = udp();
 * await client.send(new TextEncoder().encode("ping"), proxy.addr);
 * const [reply, from] = await client.receive();
 * await echoing;
 * assert.equal(new TextDecoder().decode(reply), "ping");
 * assert.equal((from as Deno.NetAddr).port, proxy.addr.port); // replies come from the proxy
 * assert.deepEqual(proxy.decisions(1, "to-target"), ["pass"]);
 * assert.deepEqual(proxy.stats, {
 *   received: 2,
 *   forwarded: 2,
 *   dropped: 0,
 *   duplicated: 0,
 *   reordered: 0,
 * });
 * assert.throws(() => new UdpProxy({ target: proxy.addr, seed: 1, drop: 2 }), RangeError);
 * client.close();
 * server.close();
 * await proxy.close();
 * ```
 */
export class UdpProxy {
  /** The settings it was made with. */
  readonly options: Readonly<UdpProxyOptions>;
  /** What it has done so far (live counts). */
  readonly stats: UdpProxyStats = {
    received: 0,
    forwarded: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
  };
  readonly #front: Deno.DatagramConn;
  readonly #flows = new Map<string, Flow>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #sending: Promise<void> = Promise.resolve();
  readonly #loop: Promise<void>;
  #closed = false;

  /** Opens the front socket and starts forwarding; throws RangeError for a rate outside 0–1. */
  constructor(options: UdpProxyOptions) {
    for (const name of ["drop", "duplicate", "reorder"] as const) {
      const rate = options[name] ?? 0;
      if (!(rate >= 0 && rate <= 1)) {
        throw new RangeError(`${name} must be from 0 to 1, got ${rate}`);
      }
    }
    this.options = options;
    this.#front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#loop = this.#frontLoop();
  }

  /** Where clients send: the proxy's front socket. */
  get addr(): Deno.NetAddr {
    return this.#front.addr as Deno.NetAddr;
  }

  /** The target's view of client `n` (1-based, in order of first datagram): its sender address. */
  upstreamAddr(n: number): Deno.NetAddr | undefined {
    const flow = [...this.#flows.values()].find((f) => f.index === n);
    return flow?.upstream.addr as Deno.NetAddr | undefined;
  }

  /**
   * The decisions taken so far for client `n` (1-based) in one direction, in
   * datagram order: equal seeds and equal traffic give equal lists.
   */
  decisions(n: number, direction: Direction): readonly Fault[] {
    const flow = [...this.#flows.values()].find((f) => f.index === n);
    return flow ? [...flow.decisions[direction]] : [];
  }

  async #frontLoop(): Promise<void> {
    while (!this.#closed) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#front.receive();
      } catch {
        return; // closed
      }
      if (from.transport !== "udp") continue;
      this.#pass(this.#flowFor(from), "to-target", data);
    }
  }

  #flowFor(client: Deno.NetAddr): Flow {
    const key = ADDRESS_TEXT(client);
    let flow = this.#flows.get(key);
    if (flow) return flow;
    const index = this.#flows.size + 1;
    const upstream = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    flow = {
      index,
      client,
      upstream,
      random: {
        "to-target": seededRandom(streamSeed(this.options.seed, index, "to-target")),
        "to-client": seededRandom(streamSeed(this.options.seed, index, "to-client")),
      },
      held: { "to-target": undefined, "to-client": undefined },
      decisions: { "to-target": [], "to-client": [] },
      pump: Promise.resolve(),
    };
    flow.pump = this.#upstreamLoop(flow);
    this.#flows.set(key, flow);
    return flow;
  }

  async #upstreamLoop(flow: Flow): Promise<void> {
    const target = this.options.target;
    while (!this.#closed) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await flow.upstream.receive();
      } catch {
        return; // closed
      }
      // Only the target's replies go back; anything else reaching this socket is noise.
      if (
        from.transport !== "udp" || from.port !== target.port || from.hostname !== target.hostname
      ) continue;
      this.#pass(flow, "to-client", data);
    }
  }

  /** Decides the fate of one datagram and carries it out. */
  #pass(flow: Flow, direction: Direction, data: Uint8Array): void {
    this.stats.received++;
    const random = flow.random[direction];
    // Always draw the same number of values per datagram, so one decision never shifts the next.
    const rolls = [random(), random(), random(), random()];
    const faulty = this.options.only === undefined || this.options.only === direction;
    const drop = faulty && rolls[0] < (this.options.drop ?? 0);
    const duplicate = faulty && !drop && rolls[1] < (this.options.duplicate ?? 0);
    // A datagram is not held while another one of the same direction waits: the waiting one
    // is released right after it, which is the reordering.
    const hold = faulty && !drop && flow.held[direction] === undefined &&
      rolls[2] < (this.options.reorder ?? 0);
    const holdMs = this.options.holdMs ?? 15;
    const copyDelay = 1 + Math.floor(rolls[3] * holdMs);
    flow.decisions[direction].push(
      drop ? "drop" : hold ? "hold" : duplicate ? "duplicate" : "pass",
    );
    if (drop) {
      this.stats.dropped++;
      this.#note(flow, direction, data, "dropped");
      return;
    }
    if (duplicate) {
      this.stats.duplicated++;
      this.#note(flow, direction, data, `duplicated (copy follows in ${copyDelay} ms)`);
      const copy = data.slice();
      this.#later(copyDelay, () => this.#send(flow, direction, copy));
    }
    if (hold) {
      this.stats.reordered++;
      this.#note(flow, direction, data, `held back (up to ${holdMs} ms) to be overtaken`);
      const timer = this.#later(holdMs, () => this.#release(flow, direction));
      flow.held[direction] = { data: data.slice(), timer };
      return;
    }
    this.#send(flow, direction, data);
    this.#release(flow, direction);
  }

  /** Sends the held datagram of this direction, if any. */
  #release(flow: Flow, direction: Direction): void {
    const held = flow.held[direction];
    if (!held) return;
    flow.held[direction] = undefined;
    clearTimeout(held.timer);
    this.#timers.delete(held.timer);
    this.#send(flow, direction, held.data);
  }

  #later(ms: number, fn: () => void): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #send(flow: Flow, direction: Direction, data: Uint8Array): void {
    if (this.#closed) return;
    this.stats.forwarded++;
    const target = this.options.target;
    // Sends go out one after another: Deno runs concurrent send() calls in no fixed order, and
    // the proxy must reorder only where its seed says so.
    this.#sending = this.#sending.then(async () => {
      try {
        if (direction === "to-target") {
          await flow.upstream.send(data, {
            transport: "udp",
            hostname: target.hostname,
            port: target.port,
          });
        } else {
          await this.#front.send(data, flow.client);
        }
      } catch {
        // A send can fail once the proxy closes; the network loses datagrams anyway.
      }
    });
  }

  #note(flow: Flow, direction: Direction, data: Uint8Array, what: string): void {
    const transcript = this.options.transcript;
    if (!transcript) return;
    const way = direction === "to-target" ? "client → server" : "server → client";
    const preview = new TextDecoder().decode(data.subarray(0, 24)).replace(/\n/g, "\\n");
    transcript.record(this.options.label ?? "proxy", "note", {
      detail: `flow ${flow.index} ${way}: ${what}: ${data.length} bytes "${preview}"${
        data.length > 24 ? "…" : ""
      }`,
    });
  }

  /** Stops forwarding: clears pending holds and copies, closes every socket, waits for the loops. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#front.close();
    for (const flow of this.#flows.values()) flow.upstream.close();
    await this.#loop;
    await Promise.all([...this.#flows.values()].map((f) => f.pump));
    await this.#sending;
  }
}
