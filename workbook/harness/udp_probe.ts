/**
 * The grader's end of a UDP conversation: a datagram socket on 127.0.0.1
 * whose every datagram, sent or received, goes into the test's transcript,
 * and whose waits have deadlines and say what did arrive.
 *
 * A probe receives in the background from the moment it exists and keeps the
 * datagrams in arrival order; {@linkcode UdpProbe.next} consumes them one at a
 * time. "The next datagram this socket gets must be X" is how a suite proves
 * that something else did *not* arrive before X, without waiting for silence.
 *
 * @module
 */
import { showBytes, toBytes } from "./bytes.ts";
import { reportMargin } from "./events.ts";
import { addNote, GradeFailure, type NoteOptions } from "./failure.ts";
import { addressText, type ProbeContext, STEP_MS, type WaitOptions } from "./probe.ts";
import { frozenText, waitUntil } from "./wait.ts";

/** One datagram a probe received. */
export interface Datagram {
  /** The datagram's bytes. */
  bytes: Uint8Array;
  /** The bytes decoded as UTF-8. */
  text: string;
  /** Who sent it. */
  from: Deno.NetAddr;
  /** Arrival, in ms since the test began (the transcript's time scale). */
  at: number;
}

/** Options of {@linkcode UdpProbe.expectNext}. */
export interface ExpectDatagramOptions extends WaitOptions {
  /** Words for the learner when a different datagram arrives (given the one that did). */
  explain?: (actual: Datagram) => string | undefined;
  /** Words for the learner when the datagram does not come, or when `explain` has none. */
  note?: string;
}

const decoder = new TextDecoder();

/**
 * A recorded UDP socket with deadlines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Transcript } from "./transcript.ts";
 * import { UdpProbe } from "./udp_probe.ts";
 *
 * const ctx = { transcript: new Transcript(), signal: new AbortController().signal };
 * const a = new UdpProbe("A", ctx);
 * const b = new UdpProbe("B", ctx);
 * await a.send("hello", b.addr);
 * const got = await b.expectNext("hello");
 * assert.equal(got.from.port, a.addr.port);
 * const failure = await b.next({ timeoutMs: 20 }).catch((failure) => failure);
 * assert.equal(failure.details.kind, "timeout");
 * assert.match(failure.message, /B had received 1 datagram\(s\), all consumed/);
 * await a.close();
 * await b.close();
 * ```
 *
 * @example In a suite
 * ```ts ignore
 * const a = openUdpProbe(t, "A");
 * await a.send("hello", server.addr);
 * await b.expectNext(`${addressText(a.addr)}: hello\n`);
 * ```
 */
export class UdpProbe {
  /** The socket's name in the transcript and in failures. */
  readonly label: string;
  /** The datagram socket (127.0.0.1 unless told otherwise, a port the kernel picked). */
  readonly socket: Deno.DatagramConn;
  readonly #ctx: ProbeContext;
  readonly #all: Datagram[] = [];
  #consumed = 0;
  #closed = false;
  readonly #pump: Promise<void>;
  readonly #listeners = new Set<() => void>();

  /** Opens a socket on `hostname` (default 127.0.0.1) port 0, receiving at once. */
  constructor(label: string, ctx: ProbeContext, options: { hostname?: string } = {}) {
    this.label = label;
    this.#ctx = ctx;
    this.socket = Deno.listenDatagram({
      hostname: options.hostname ?? "127.0.0.1",
      port: 0,
      transport: "udp",
    });
    this.#pump = this.#receiveLoop();
  }

  /** Where this probe receives: send datagrams for it here. */
  get addr(): Deno.NetAddr {
    return this.socket.addr as Deno.NetAddr;
  }

  /** Every datagram received so far, consumed or not. */
  get received(): readonly Datagram[] {
    return this.#all;
  }

  /** Datagrams received and not yet consumed by {@linkcode UdpProbe.next}. */
  get queued(): readonly Datagram[] {
    return this.#all.slice(this.#consumed);
  }

  async #receiveLoop(): Promise<void> {
    while (!this.#closed) {
      let bytes: Uint8Array;
      let from: Deno.Addr;
      try {
        [bytes, from] = await this.socket.receive();
      } catch (error) {
        if (!this.#closed) {
          this.#ctx.transcript.record(this.label, "note", { detail: `receive failed: ${error}` });
        }
        break;
      }
      const datagram = {
        bytes: bytes.slice(),
        text: decoder.decode(bytes),
        from: from as Deno.NetAddr,
        at: this.#ctx.transcript.now(),
      };
      this.#all.push(datagram);
      this.#ctx.transcript.record(this.label, "received", {
        bytes,
        detail: `from ${addressText(from)}`,
      });
      for (const listener of [...this.#listeners]) listener();
    }
  }

  /** Sends one datagram to `to`. */
  async send(
    data: string | Uint8Array,
    to: { hostname: string; port: number },
    options: { step?: string } & NoteOptions = {},
  ): Promise<void> {
    const bytes = toBytes(data);
    const target: Deno.NetAddr = { transport: "udp", hostname: to.hostname, port: to.port };
    try {
      await this.socket.send(bytes, target);
    } catch (error) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step: options.step ?? `send ${showBytes(bytes, 60)} from ${this.label}`,
        expected: `the datagram to leave for ${addressText(target)}`,
        actual: `send failed: ${error}`,
      });
      throw addNote(failure, options);
    }
    this.#ctx.transcript.record(this.label, "sent", {
      bytes,
      detail: `to ${addressText(target)}`,
    });
  }

  /** The next datagram not yet consumed, waiting for it up to the deadline. */
  async next(options: WaitOptions = {}): Promise<Datagram> {
    const step = options.step ?? `receive a datagram on ${this.label}`;
    const timeoutMs = options.timeoutMs ?? STEP_MS;
    const take = () => this.#consumed < this.#all.length ? this.#all[this.#consumed++] : undefined;
    const ready = take();
    if (ready) return ready;
    const waited = await waitUntil(take, {
      timeoutMs,
      signal: this.#ctx.signal,
      wakeOn: this.#listeners,
      onTime: (usedMs) => {
        if (this.#ctx.check) reportMargin(this.#ctx.check, step, usedMs, timeoutMs);
      },
    });
    if (waited.status === "done") return waited.value;
    if (waited.status === "aborted") throw addNote(waited.reason, options);
    const failure = new GradeFailure({
      kind: waited.status,
      step,
      expected: `a datagram on ${this.label} within ${timeoutMs} ms`,
      actual: waited.status === "frozen"
        ? `${frozenText(timeoutMs, waited.lateMs)}; ${this.#sofar()}`
        : `none arrived; ${this.#sofar()}`,
    });
    throw addNote(failure, options);
  }

  /** Fails unless the next datagram is exactly `expected`; returns it. */
  async expectNext(
    expected: string | Uint8Array,
    options: ExpectDatagramOptions = {},
  ): Promise<Datagram> {
    const want = toBytes(expected);
    const step = options.step ?? `receive ${showBytes(want, 60)} on ${this.label}`;
    const got = await this.next({ ...options, step, note: undefined }).catch((error) => {
      if (error instanceof GradeFailure && error.details.kind !== "todo") {
        error.details.expected = `${showBytes(want)} on ${this.label} within ${
          options.timeoutMs ?? STEP_MS
        } ms`;
        error.message = error.render();
      }
      throw addNote(error, options);
    });
    if (!sameBytes(got.bytes, want)) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step,
        expected: `the next datagram on ${this.label} to be ${showBytes(want)}`,
        actual: `${showBytes(got.bytes)} from ${addressText(got.from)}`,
        note: options.explain?.(got),
      });
      throw addNote(failure, options);
    }
    return got;
  }

  #sofar(): string {
    const n = this.#all.length;
    return n === 0
      ? `${this.label} had received no datagram at all`
      : `${this.label} had received ${n} datagram(s), all consumed; the last was ${
        showBytes(this.#all[n - 1].bytes, 60)
      }`;
  }

  /** Closes the socket (idempotent) and waits for the background receiver to stop. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.socket.close();
    } catch {
      // Already closed.
    }
    await this.#pump;
  }
}

/**
 * A probe recorded in the test's transcript and closed after the test, on
 * `options.hostname` (default 127.0.0.1). `t` is the suite's Grader (only its
 * transcript, signal, defer and check name are used).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { Grader } from "./grader.ts";
 * import { openUdpProbe } from "./udp_probe.ts";
 *
 * const t = new Grader(getLesson("07"), "example");
 * const a = openUdpProbe(t, "A");
 * const b = openUdpProbe(t, "B");
 * assert.equal(openUdpProbe(t, "C on ::1", { hostname: "::1" }).addr.hostname, "::1");
 * await a.send("ping", b.addr);
 * assert.equal((await b.next()).text, "ping");
 * assert.equal(t.transcript.total("B", "received"), 4);
 * await t.cleanup(); // closes both
 * ```
 */
export function openUdpProbe(
  t: {
    transcript: ProbeContext["transcript"];
    signal: AbortSignal;
    defer(fn: () => unknown): void;
    /** The check's name (a Grader has it): slow waits are reported as margins. */
    testName?: string;
  },
  label: string,
  options: { hostname?: string } = {},
): UdpProbe {
  const probe = new UdpProbe(label, {
    transcript: t.transcript,
    signal: t.signal,
    check: t.testName,
  }, options);
  t.defer(() => probe.close());
  return probe;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
