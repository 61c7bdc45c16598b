import assert from "node:assert/strict";
import { ProcNetUnavailableError, readProcNet } from "./procnet.ts";

const linux = Deno.build.os === "linux";
const mayRunCat = Deno.permissions.querySync({ name: "run", command: "cat" }).state === "granted";

Deno.test({
  name: "readProcNet returns both tables, header first",
  ignore: !linux || !mayRunCat,
  async fn() {
    const tcp = await readProcNet("tcp");
    assert.match(tcp, /^\s*sl\s+local_address\s+rem_address\s+st\s/);
    const tcp6 = await readProcNet("tcp6");
    assert.match(tcp6, /^\s*sl\s+local_address\s+remote_address\s+st\s/);
  },
});

Deno.test({
  name: "readProcNet sees a listener it was not told about",
  ignore: !linux || !mayRunCat ||
    Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted",
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = listener.addr.port.toString(16).toUpperCase().padStart(4, "0");
      // 0100007F is 127.0.0.1 in host (little-endian) order; 0A is LISTEN.
      assert.match(await readProcNet("tcp"), new RegExp(`0100007F:${port} 00000000:0000 0A `));
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "readProcNet without permission to run cat says what to grant",
  ignore: !linux || mayRunCat,
  async fn() {
    await assert.rejects(() => readProcNet("tcp"), (error: Error) => {
      assert.ok(error instanceof ProcNetUnavailableError);
      assert.match(error.message, /--allow-run=cat/);
      return true;
    });
  },
});

Deno.test("readProcNet refuses other files", async () => {
  await assert.rejects(() => readProcNet("udp" as "tcp"), TypeError);
});
