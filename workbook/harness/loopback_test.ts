import assert from "node:assert/strict";
import { freePort, ioTurns } from "./loopback.ts";

Deno.test("ioTurns returns after a datagram already sent has reached a waiting receive", async () => {
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (let round = 0; round < 20; round++) {
      let handled = false;
      const receiving = b.receive().then(() => (handled = true));
      await a.send(new Uint8Array([round]), b.addr);
      await ioTurns();
      assert.equal(handled, true, `round ${round}`);
      await receiving;
    }
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ioTurns runs the code after a TCP read that had bytes waiting", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  try {
    let seen = 0;
    const reading = server.read(new Uint8Array(16)).then((n) => (seen = n ?? -1));
    await client.write(new Uint8Array([1, 2, 3]));
    await ioTurns(2);
    assert.equal(seen, 3);
    await reading;
  } finally {
    client.close();
    server.close();
    listener.close();
  }
});

Deno.test("freePort gives ports that can be bound right away", () => {
  for (const transport of ["tcp", "udp"] as const) {
    const port = freePort(transport);
    assert.ok(port > 0);
    const socket = transport === "tcp"
      ? Deno.listen({ hostname: "127.0.0.1", port })
      : Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
    assert.equal((socket.addr as Deno.NetAddr).port, port);
    socket.close();
  }
});
