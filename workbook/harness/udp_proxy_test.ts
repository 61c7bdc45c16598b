import assert from "node:assert/strict";
import { Transcript } from "./transcript.ts";
import { type Fault, UdpProxy, type UdpProxyOptions } from "./udp_proxy.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function udpSocket(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

/** An echo server that also records who sent what. */
function echoTarget() {
  const socket = udpSocket();
  const seen: { text: string; from: Deno.NetAddr }[] = [];
  const loop = (async () => {
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await socket.receive();
      } catch {
        return;
      }
      seen.push({ text: decoder.decode(data), from: from as Deno.NetAddr });
      await socket.send(data, from).catch(() => {});
    }
  })();
  return {
    addr: socket.addr as Deno.NetAddr,
    seen,
    async close() {
      socket.close();
      await loop;
    },
  };
}

/** Receives `n` datagrams as text, or fails after `ms`. */
async function receiveTexts(socket: Deno.DatagramConn, n: number, ms = 2000): Promise<string[]> {
  const texts: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`got only ${JSON.stringify(texts)}`)), ms);
  });
  try {
    while (texts.length < n) {
      const [data] = await Promise.race([socket.receive(), timeout]);
      texts.push(decoder.decode(data));
    }
    return texts;
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every few ms until it holds, failing after `ms`. */
async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function withProxy(
  options: Omit<UdpProxyOptions, "target">,
  fn: (proxy: UdpProxy, target: ReturnType<typeof echoTarget>) => Promise<void>,
): Promise<void> {
  const target = echoTarget();
  const proxy = new UdpProxy({ ...options, target: target.addr });
  try {
    await fn(proxy, target);
  } finally {
    await proxy.close();
    await target.close();
  }
}

Deno.test("UdpProxy without faults forwards both ways and keeps each client's flow apart", async () => {
  await withProxy({ seed: 1 }, async (proxy, target) => {
    const a = udpSocket();
    const b = udpSocket();
    try {
      await a.send(encoder.encode("from a"), proxy.addr);
      assert.deepEqual(await receiveTexts(a, 1), ["from a"]);
      await b.send(encoder.encode("from b"), proxy.addr);
      assert.deepEqual(await receiveTexts(b, 1), ["from b"]);
      // The target sees one sender address per client: the proxy's upstream sockets.
      assert.equal(target.seen[0].from.port, proxy.upstreamAddr(1)?.port);
      assert.equal(target.seen[1].from.port, proxy.upstreamAddr(2)?.port);
      assert.notEqual(target.seen[0].from.port, target.seen[1].from.port);
      assert.deepEqual(proxy.stats, {
        received: 4,
        forwarded: 4,
        dropped: 0,
        duplicated: 0,
        reordered: 0,
      });
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("UdpProxy with drop 1 loses everything, and says so in the transcript", async () => {
  const transcript = new Transcript();
  await withProxy({ seed: 2, drop: 1, transcript }, async (proxy, target) => {
    const a = udpSocket();
    try {
      await a.send(encoder.encode("lost 1"), proxy.addr);
      await a.send(encoder.encode("lost 2"), proxy.addr);
      await until(() => proxy.stats.received === 2);
      assert.equal(proxy.stats.dropped, 2);
      assert.equal(target.seen.filter((s) => s.text.startsWith("lost")).length, 0);
      assert.match(transcript.format(), /flow 1 client → server: dropped: 6 bytes "lost 1"/);
    } finally {
      a.close();
    }
  });
});

Deno.test("UdpProxy with duplicate 1 delivers every datagram twice", async () => {
  await withProxy({ seed: 3, duplicate: 1, only: "to-target", holdMs: 5 }, async (proxy) => {
    const a = udpSocket();
    try {
      await a.send(encoder.encode("twice"), proxy.addr);
      // Two copies reach the echo target, so two echoes come back (replies are not faulted).
      assert.deepEqual(await receiveTexts(a, 2), ["twice", "twice"]);
      assert.equal(proxy.stats.duplicated, 1);
    } finally {
      a.close();
    }
  });
});

Deno.test("UdpProxy with reorder 1 lets each held datagram be overtaken by the next", async () => {
  // A long hold: the next datagram always comes first, however slow the machine.
  await withProxy({ seed: 4, reorder: 1, only: "to-target", holdMs: 5000 }, async (proxy) => {
    const a = udpSocket();
    try {
      for (const text of ["1", "2", "3", "4"]) await a.send(encoder.encode(text), proxy.addr);
      assert.deepEqual(await receiveTexts(a, 4), ["2", "1", "4", "3"]);
      assert.deepEqual(proxy.decisions(1, "to-target"), ["hold", "pass", "hold", "pass"]);
      assert.equal(proxy.stats.reordered, 2);
    } finally {
      a.close();
    }
  });
});

Deno.test("UdpProxy sends a held datagram after holdMs when nothing overtakes it", async () => {
  await withProxy({ seed: 4, reorder: 1, only: "to-target", holdMs: 10 }, async (proxy) => {
    const a = udpSocket();
    try {
      await a.send(encoder.encode("alone"), proxy.addr);
      assert.deepEqual(await receiveTexts(a, 1), ["alone"]);
      assert.deepEqual(proxy.decisions(1, "to-target"), ["hold"]);
    } finally {
      a.close();
    }
  });
});

Deno.test("UdpProxy decisions depend on the seed only: same seed, same faults", async () => {
  const run = async (seed: number): Promise<Fault[]> => {
    let faults: Fault[] = [];
    await withProxy(
      { seed, drop: 0.3, duplicate: 0.2, reorder: 0.2, only: "to-target", holdMs: 3 },
      async (proxy) => {
        const a = udpSocket();
        try {
          for (let i = 0; i < 40; i++) await a.send(encoder.encode(`${i}`), proxy.addr);
          await until(() => proxy.decisions(1, "to-target").length === 40);
          faults = [...proxy.decisions(1, "to-target")];
        } finally {
          a.close();
        }
      },
    );
    return faults;
  };
  const first = await run(42);
  assert.equal(first.length, 40);
  assert.deepEqual(await run(42), first);
  assert.notDeepEqual(await run(43), first);
  for (const fault of ["drop", "duplicate", "hold", "pass"] as const) {
    assert.ok(first.includes(fault), `40 datagrams at these rates include a ${fault}`);
  }
});

Deno.test("UdpProxy.close clears held datagrams and pending copies (no leaks)", async () => {
  await withProxy({ seed: 5, reorder: 1, duplicate: 1, holdMs: 10_000 }, async (proxy) => {
    const a = udpSocket();
    try {
      await a.send(encoder.encode("held forever"), proxy.addr);
      await until(() => proxy.stats.received === 1);
      assert.equal(proxy.stats.reordered, 1);
    } finally {
      a.close();
    }
    // withProxy closes the proxy; the test sanitizers fail if a timer or socket survives.
  });
});

Deno.test("UdpProxy refuses rates outside 0..1", () => {
  assert.throws(
    () => new UdpProxy({ target: { hostname: "127.0.0.1", port: 9 }, seed: 1, drop: 1.5 }),
    RangeError,
  );
});
