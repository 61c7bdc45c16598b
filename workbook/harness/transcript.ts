/**
 * The byte transcript of a test: every connection the grader opened or
 * accepted, each write and read with its exact bytes and boundaries, and the
 * connect / EOF / half-close / reset / close events, timestamped. Printed in
 * full when a check fails.
 *
 * @module
 */
import { showBytes } from "./bytes.ts";

/** What happened on a connection, seen from the grader's side. */
export type WireEvent =
  | "connect" // the grader connected to your code
  | "accept" // your code connected to the grader
  | "sent" // the grader wrote these bytes
  | "received" // one read returned these bytes from your code
  | "eof" // your code closed its sending side (a read returned end of stream)
  | "half-close" // the grader closed its sending side
  | "reset-by-peer" // your code's side reset the connection (RST)
  | "reset" // the grader reset the connection on purpose (RST)
  | "close" // the grader closed the connection
  | "note"; // anything else worth seeing, in words

/** One line of a transcript. */
export interface TranscriptEntry {
  /** Milliseconds since the test began. */
  at: number;
  /** Connection label, e.g. `A` or `client 2`. */
  conn: string;
  /** What happened. */
  event: WireEvent;
  /** The bytes written or read (`sent`, `received`), copied when recorded. */
  bytes?: Uint8Array;
  /** Words shown after the event: addresses, a datagram's peer, a note's text. */
  detail?: string;
}

/**
 * Collects wire events for one test and renders them for a learner.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Transcript } from "./transcript.ts";
 *
 * const transcript = new Transcript();
 * transcript.record("A", "sent", { bytes: new TextEncoder().encode("hi\n") });
 * transcript.record("A", "received", { bytes: new TextEncoder().encode("HI\n") });
 * transcript.record("A", "eof");
 * assert.equal(transcript.total("A", "sent"), 3);
 * const lines = transcript.format().split("\n");
 * assert.match(lines[0], /^ +\d+\.\d ms  A  → 3 bytes +"hi\\n"$/);
 * assert.match(lines[1], /A  ← 3 bytes +"HI\\n"$/);
 * assert.match(lines[2], /A  ← EOF \(your side finished sending\)$/);
 * ```
 */
export class Transcript {
  /** Every event recorded so far, oldest first (at most {@linkcode Transcript.limit}). */
  readonly entries: TranscriptEntry[] = [];
  readonly #start = performance.now();
  /** Keep at most this many entries (big load tests would drown the reader otherwise). */
  readonly limit: number;

  /** An empty transcript that keeps at most `limit` events; its clock starts now. */
  constructor(limit = 2000) {
    this.limit = limit;
  }

  /** Adds an event now. */
  record(conn: string, event: WireEvent, extra: { bytes?: Uint8Array; detail?: string } = {}) {
    if (this.entries.length >= this.limit) return;
    // Copy: callers reuse their read buffers.
    const bytes = extra.bytes ? extra.bytes.slice() : undefined;
    this.entries.push({
      at: performance.now() - this.#start,
      conn,
      event,
      bytes,
      detail: extra.detail,
    });
  }

  /** Milliseconds since this transcript began. */
  now(): number {
    return performance.now() - this.#start;
  }

  /** Bytes one connection received (or sent) in all. */
  total(conn: string, event: "sent" | "received"): number {
    return this.entries.filter((e) => e.conn === conn && e.event === event)
      .reduce((n, e) => n + (e.bytes?.length ?? 0), 0);
  }

  /**
   * Renders the transcript. By default, the part that matters: the events of
   * the connections active at the end (the failing step's), at most
   * `focus` of them (16); with `all`, the last 400 events of every connection.
   * A line says what was left out.
   */
  format(options: { all?: boolean; focus?: number } = {}): string {
    if (this.entries.length === 0) return "  (no connection was opened)";
    let shown: TranscriptEntry[];
    if (options.all) shown = this.entries.slice(-400);
    else {
      const focus = options.focus ?? 16;
      const active = new Set(this.entries.slice(-4).map((e) => e.conn));
      shown = this.entries.filter((e) => active.has(e.conn)).slice(-focus);
    }
    const skipped = this.entries.length - shown.length;
    const width = Math.max(...shown.map((e) => e.conn.length));
    const lines = shown.map((e) => {
      const time = `${e.at.toFixed(1).padStart(8)} ms`;
      return `${time}  ${e.conn.padEnd(width)}  ${describe(e)}`;
    });
    if (skipped > 0) {
      lines.unshift(
        options.all
          ? `  … ${skipped} earlier events not shown`
          : `  … ${skipped} other events (earlier, or on other connections) not shown; ` +
            "--verbose shows the whole transcript",
      );
    }
    if (this.entries.length >= this.limit) lines.push(`  … transcript full; later events not kept`);
    return lines.join("\n");
  }
}

function describe(entry: TranscriptEntry): string {
  const n = entry.bytes?.length ?? 0;
  const count = `${n} byte${n === 1 ? "" : "s"}`;
  switch (entry.event) {
    case "connect":
      return `connected ${entry.detail ?? ""}`.trimEnd();
    case "accept":
      return `accepted your connection ${entry.detail ?? ""}`.trimEnd();
    case "sent":
    case "received": {
      // Datagram probes put the peer address in `detail`; streams leave it empty.
      const arrow = entry.event === "sent" ? "→" : "←";
      const where = entry.detail ? `  (${entry.detail})` : "";
      return `${arrow} ${count.padEnd(9)} ${showBytes(entry.bytes ?? new Uint8Array())}${where}`;
    }
    case "eof":
      return "← EOF (your side finished sending)";
    case "half-close":
      return "→ EOF (grader shut down its sending side; still reading)";
    case "reset-by-peer":
      return `← RST (your side reset the connection)${entry.detail ? `: ${entry.detail}` : ""}`;
    case "reset":
      return "→ RST (grader reset the connection on purpose)";
    case "close":
      return "closed by the grader";
    case "note":
      return `· ${entry.detail ?? ""}`;
  }
}

/**
 * The legend printed above a transcript.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRANSCRIPT_LEGEND } from "./transcript.ts";
 *
 * assert.match(TRANSCRIPT_LEGEND, /^→ grader to your code, ← your code to grader/);
 * ```
 */
export const TRANSCRIPT_LEGEND =
  "→ grader to your code, ← your code to grader; each → / ← line is one write / one read";
