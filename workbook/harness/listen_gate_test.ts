import assert from "node:assert/strict";
import net from "node:net";
import { gateListen, gateListener } from "./listen_gate.ts";

const LOOPBACK = { hostname: "127.0.0.1", port: 0 };
const dial = (listener: Deno.Listener) =>
  Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });

Deno.test("an open gate passes accept() through and counts the calls", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK));
  const accepted = gate.listener.accept();
  assert.equal(gate.accepts, 1);
  assert.equal(gate.waiting, 1);
  const client = await dial(gate.listener);
  const conn = await accepted;
  assert.equal(gate.waiting, 0);
  assert.equal((conn.remoteAddr as Deno.NetAddr).port, (client.localAddr as Deno.NetAddr).port);
  conn.close();
  client.close();
  gate.listener.close();
});

Deno.test("a holding gate keeps the connection until open(), even after the listener closed", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK), "holding");
  let delivered = false;
  const accepted = gate.listener.accept().then((conn) => {
    delivered = true;
    return conn;
  });
  const client = await dial(gate.listener);
  await gate.until(() => gate.held === 1, "held");
  gate.listener.close();
  assert.equal(delivered, false);
  gate.open();
  const conn = await accepted;
  assert.equal(gate.held, 0);
  conn.close();
  client.close();
});

Deno.test("a paused gate keeps clients in the backlog, where a reset makes accept() fail", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK), "paused");
  const { port } = gate.listener.addr as Deno.NetAddr;
  const first = gate.listener.accept().then((conn) => conn, (error) => error);
  await gate.until(() => gate.waiting === 1, "waiting");
  await new Promise<void>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => socket.resetAndDestroy());
    socket.on("error", () => {});
    socket.on("close", () => resolve());
  });
  gate.open();
  const outcome = await first;
  assert.ok(outcome instanceof Deno.errors.NotConnected, String(outcome));
  gate.listener.close();
});

Deno.test("the async iterator goes through the gate and ends when the listener closes", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK));
  const seen: Deno.Conn[] = [];
  const loop = (async () => {
    for await (const conn of gate.listener) seen.push(conn);
  })();
  const client = await dial(gate.listener);
  await gate.until(() => gate.accepts === 2, "second accept");
  gate.listener.close();
  await loop;
  assert.equal(seen.length, 1);
  seen[0].close();
  client.close();
});

Deno.test("gateListen gates the listener a start function makes, and restores Deno.listen", () => {
  const real = Deno.listen;
  const { value, gate } = gateListen(() => ({ listener: Deno.listen(LOOPBACK) }));
  assert.equal(Deno.listen, real);
  assert.equal(value.listener, gate.listener);
  assert.equal(gate.listener.addr.transport, "tcp");
  value.listener.close();
  assert.throws(() => gateListen(() => 1), /did not call Deno.listen/);
});

Deno.test("until() rejects with the counts when the condition never holds", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK));
  await assert.rejects(
    gate.until(() => gate.accepts === 1, "an accept", 20),
    /an accept: not within 20 ms \(accept\(\) called 0 time/,
  );
  gate.listener.close();
});

Deno.test("failNext makes the next accept() calls fail with EMFILE, then lets clients through", async () => {
  const gate = gateListener(Deno.listen(LOOPBACK));
  gate.failNext(2);
  const client = await dial(gate.listener);
  for (let i = 1; i <= 2; i++) {
    const error = await gate.listener.accept().then(() => undefined, (e) => e);
    assert.ok(error instanceof Error && /os error 24/.test(error.message), String(error));
    assert.equal(gate.failures, i);
  }
  const conn = await gate.listener.accept(); // the client waited in the queue meanwhile
  assert.equal(gate.accepts, 3);
  assert.equal(gate.callTimes.length, 3);
  assert.ok(gate.callTimes[0] <= gate.callTimes[1] && gate.callTimes[1] <= gate.callTimes[2]);
  gate.failNext(1, () => new Deno.errors.NotConnected("gone"));
  const other = await gate.listener.accept().then(() => undefined, (e) => e);
  assert.ok(other instanceof Deno.errors.NotConnected);
  conn.close();
  client.close();
  gate.listener.close();
});
