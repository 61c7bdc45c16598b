/**
 * The acceptance run: `deno task run 7 bench`.
 *
 * Starts your request server, puts a lossy proxy in front of it (20% of the
 * datagrams dropped in each direction, 10% duplicated, 10% reordered, from a
 * fixed seed), runs 500 requests from 10 stop-and-wait clients through it,
 * and prints what happened: every request must complete exactly once.
 *
 * Flags: `--requests 500 --clients 10 --loss 0.2 --duplicate 0.1
 * --reorder 0.1 --timeout-ms 30 --tries 30 --seed 7`.
 *
 * @module
 */
import { parseProgramArgs } from "workbook";
import { UdpProxy } from "workbook/udp-proxy";
import { ReliableClient, startReliableServer } from "./udp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function numberFlag(extra: Record<string, string>, name: string, fallback: number): number {
  const value = extra[name] === undefined ? fallback : Number(extra[name]);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} must be a number ≥ 0, got ${extra[name]}`);
    Deno.exit(2);
  }
  return value;
}

async function main() {
  const flags = [
    "requests",
    "clients",
    "loss",
    "duplicate",
    "reorder",
    "timeout-ms",
    "tries",
    "seed",
  ];
  const { extra } = parseProgramArgs(Deno.args, { port: 0 }, flags);
  const requests = numberFlag(extra, "requests", 500);
  const clientCount = Math.max(1, numberFlag(extra, "clients", 10));
  const timeoutMs = numberFlag(extra, "timeout-ms", 30);
  const maxTries = numberFlag(extra, "tries", 30);

  const executions = new Map<string, number>();
  const server = startReliableServer({
    handler: (payload) => {
      const text = decoder.decode(payload);
      executions.set(text, (executions.get(text) ?? 0) + 1);
      return encoder.encode(`done ${text}`);
    },
  });
  const proxy = new UdpProxy({
    target: server.addr,
    seed: numberFlag(extra, "seed", 7),
    drop: numberFlag(extra, "loss", 0.2),
    duplicate: numberFlag(extra, "duplicate", 0.1),
    reorder: numberFlag(extra, "reorder", 0.1),
  });
  const clients = Array.from(
    { length: clientCount },
    () => new ReliableClient({ server: proxy.addr, timeoutMs, maxTries }),
  );

  let wrongReplies = 0;
  const failures: string[] = [];
  const started = performance.now();
  await Promise.all(clients.map(async (client, c) => {
    for (let i = c; i < requests; i += clientCount) {
      const text = `request ${i}`;
      try {
        const reply = decoder.decode(await client.request(encoder.encode(text)));
        if (reply !== `done ${text}`) wrongReplies++;
      } catch (error) {
        failures.push(`${text}: ${error instanceof Error ? error.message : error}`);
      }
    }
  }));
  const wallMs = performance.now() - started;
  await Promise.all(clients.map((c) => c.close()));
  await proxy.close();
  await server.close();

  const sum = (pick: (c: ReliableClient) => number) => clients.reduce((n, c) => n + pick(c), 0);
  const counts = [...executions.values()];
  const once = counts.filter((n) => n === 1).length;
  const twice = counts.filter((n) => n > 1).length;
  const ok = once === requests && twice === 0 && wrongReplies === 0 && failures.length === 0;
  const p = proxy.options;
  console.log(
    `UDP stop-and-wait through a lossy proxy: ${requests} requests, ${clientCount} clients, ` +
      `loss ${p.drop}, duplicate ${p.duplicate}, reorder ${p.reorder}, seed ${p.seed}, ` +
      `timeout ${timeoutMs} ms × ${maxTries} tries`,
  );
  console.log(`  requests completed        ${requests - failures.length} / ${requests}`);
  console.log(`  executed exactly once     ${once}   (more than once: ${twice})`);
  console.log(`  wrong replies             ${wrongReplies}`);
  console.log(`  retransmissions           ${sum((c) => c.stats.retransmissions)}`);
  console.log(`  stale replies ignored     ${sum((c) => c.stats.staleReplies)}`);
  console.log(`  duplicates suppressed     ${server.stats.duplicates} (answered from the cache)`);
  console.log(
    `  proxy                     ${proxy.stats.received} datagrams in, ${proxy.stats.dropped} ` +
      `dropped, ${proxy.stats.duplicated} duplicated, ${proxy.stats.reordered} reordered`,
  );
  console.log(`  wall time                 ${(wallMs / 1000).toFixed(2)} s`);
  for (const failure of failures.slice(0, 5)) console.log(`  failed: ${failure}`);
  console.log(ok ? "every request completed exactly once" : "NOT exactly once — see above");
  if (!ok) Deno.exit(1);
}

if (import.meta.main) await main();
