import assert from "node:assert/strict";
import net from "node:net";
import { acceptEach, isGoneBeforeAccept, isOutOfDescriptors } from "./accept.ts";

Deno.test("isOutOfDescriptors knows EMFILE and ENFILE by their os error", () => {
  assert.ok(isOutOfDescriptors(new Error("Too many open files (os error 24)")));
  assert.ok(isOutOfDescriptors(new Error("Too many open files in system (os error 23)")));
  assert.ok(!isOutOfDescriptors(new Error("Connection refused (os error 111)")));
  assert.ok(isGoneBeforeAccept(new Deno.errors.NotConnected("x")));
});

Deno.test("acceptEach serves clients, survives a reset while queued, ends when closed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: string[] = [];
  const loop = acceptEach(listener, async (conn) => {
    const buffer = new Uint8Array(16);
    const n = await conn.read(buffer).catch(() => null);
    if (n) served.push(new TextDecoder().decode(buffer.subarray(0, n)));
    conn.close();
  });
  // A client that resets at once, likely before it is accepted.
  const socket = net.connect({ host: "127.0.0.1", port: listener.addr.port });
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.on("error", () => {});
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.resetAndDestroy();
  await closed;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await conn.write(new TextEncoder().encode("hi"));
  await conn.read(new Uint8Array(1)); // EOF once served
  conn.close();
  assert.deepEqual(served, ["hi"]);
  listener.close();
  await loop;
});

Deno.test("acceptEach pauses on EMFILE, logs once per episode, and resumes", async () => {
  let calls = 0;
  const conns: string[] = [];
  const fake = {
    accept(): Promise<Deno.Conn> {
      calls++;
      if (calls <= 4) return Promise.reject(new Error("Too many open files (os error 24)"));
      if (calls === 5) return Promise.resolve({ close() {} } as Deno.Conn);
      return Promise.reject(new Deno.errors.BadResource("closed"));
    },
  } as unknown as Deno.Listener;
  const warnings: string[] = [];
  const infos: string[] = [];
  await acceptEach(fake, () => void conns.push("served"), {
    pauseMs: 1,
    log: { warn: (m) => void warnings.push(m), info: (m) => void infos.push(m) },
  });
  assert.equal(calls, 6);
  assert.deepEqual(conns, ["served"]);
  assert.equal(warnings.length, 1, "one warning for the whole episode");
  assert.equal(infos.length, 1, "one line when accepting resumed");
});

Deno.test("acceptEach rethrows an error it cannot explain", async () => {
  const fake = {
    accept: () => Promise.reject(new TypeError("boom")),
  } as unknown as Deno.Listener;
  await assert.rejects(acceptEach(fake, () => {}), TypeError);
});
