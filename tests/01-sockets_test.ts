/**
 * Grading suite of lesson 01 — sockets: addresses, families and ports.
 * Run it with `deno task lesson 1`.
 */
import { lessonSuite } from "../workbook/harness/mod.ts";
import type * as Lesson from "../solutions/01-sockets/sockets.ts";

const suite = lessonSuite("01");
const load = (t: { load<T>(): Promise<T> }) => t.load<typeof Lesson>();

suite.test("formatAddress writes IPv4, IPv6 and Unix addresses", async (t) => {
  const { formatAddress } = await load(t);
  const cases: [Deno.Addr, string][] = [
    [{ transport: "tcp", hostname: "127.0.0.1", port: 4000 }, "127.0.0.1:4000"],
    [{ transport: "tcp", hostname: "::1", port: 4000 }, "[::1]:4000"],
    [{ transport: "udp", hostname: "fe80::1", port: 53 }, "[fe80::1]:53"],
    [{ transport: "udp", hostname: "10.0.0.7", port: 5353 }, "10.0.0.7:5353"],
    [{ transport: "unix", path: "/tmp/app.sock" }, "unix:/tmp/app.sock"],
  ];
  for (const [addr, expected] of cases) {
    const text = await t.step(`formatAddress(${JSON.stringify(addr)})`, () => formatAddress(addr));
    t.expectEqual(text, expected, `formatAddress(${JSON.stringify(addr)})`);
  }
});

async function checkTcpListener(
  t: Parameters<Parameters<typeof suite.test>[1]>[0],
  hostname: string,
) {
  const { listenTcp } = await load(t);
  const listener = await t.step(`listenTcp("${hostname}")`, () => listenTcp(hostname));
  t.defer(() => listener.close());
  const addr = listener.addr;
  t.check(addr.transport === "tcp" && addr.hostname === hostname, {
    step: `listenTcp("${hostname}").addr`,
    expected: `a TCP address on ${hostname}`,
    actual: JSON.stringify(addr),
    note: "listen on exactly the host you were given: 0.0.0.0 would open the port to the network",
  });
  t.check(addr.port >= 1024, {
    step: `listenTcp("${hostname}").addr.port`,
    expected: "an ephemeral port chosen by the kernel (pass port 0)",
    actual: String(addr.port),
  });
  // Prove it really listens: connect and see the connection arrive.
  const accepted = listener.accept();
  const client = await t.connect(addr, "client");
  const conn = await t.step("accept the grader's connection on your listener", () => accepted);
  t.defer(() => conn.close());
  await conn.write(new TextEncoder().encode("ping\n"));
  await client.expect("ping\n", { step: "bytes written on the accepted side reach the client" });
}

suite.test("listenTcp on 127.0.0.1 gets an ephemeral port", async (t) => {
  await checkTcpListener(t, "127.0.0.1");
});

suite.test("listenTcp on ::1 speaks IPv6", async (t) => {
  await checkTcpListener(t, "::1");
}, { requires: ["ipv6"] });

suite.test("listenUnix makes a socket file that clients can reach", async (t) => {
  const { listenUnix } = await load(t);
  const path = await t.socketPath();
  const listener = await t.step(`listenUnix("${path}")`, () => listenUnix(path));
  t.defer(() => listener.close());
  const info = await Deno.lstat(path).catch(() => undefined);
  t.check(info?.isSocket === true, {
    step: "look at the socket file",
    expected: `a socket file at ${path}`,
    actual: info ? "a file that is not a socket" : "no file there",
  });
  const accepted = listener.accept();
  const client = await t.connect({ path }, "unix client");
  const conn = await t.step("accept on your Unix listener", () => accepted);
  await conn.write(new TextEncoder().encode("over a unix socket\n"));
  conn.close();
  await client.expect("over a unix socket\n");
  await client.expectEnd();
});

/**
 * Leaves what a crashed server leaves: a socket file nobody listens on.
 * (Closing a Deno listener removes its file, so keep a second name for the
 * socket's inode while the listener closes, then move it into place.)
 */
async function leaveStaleSocket(path: string): Promise<void> {
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.link(path, `${path}.stale`);
  listener.close();
  await Deno.rename(`${path}.stale`, path);
}

suite.test("listenUnix replaces a stale socket file left by a crash", async (t) => {
  const { listenUnix } = await load(t);
  const path = await t.socketPath();
  await leaveStaleSocket(path);
  const stale = await Deno.lstat(path);
  t.check(stale.isSocket === true, {
    step: "prepare a stale socket file",
    expected: "a socket file",
    actual: "something else (the grader could not prepare the check)",
  });
  const listener = await t.step(
    `listenUnix("${path}") where an old socket file remains`,
    () => listenUnix(path),
  );
  t.defer(() => listener.close());
  const accepted = listener.accept();
  const client = await t.connect({ path }, "unix client");
  const conn = await t.step("accept on your new Unix listener", () => accepted);
  conn.close();
  await client.expectEnd();
});

suite.test("listenUnix leaves a file that is not a socket alone", async (t) => {
  const { listenUnix } = await load(t);
  const path = await t.socketPath();
  await Deno.writeTextFile(path, "precious data\n");
  await t.expectThrows(
    `listenUnix("${path}") where a regular file is`,
    () => listenUnix(path),
    "an Error: the path holds a regular file, not a socket",
  );
  const content = await Deno.readTextFile(path).catch(() => "(file deleted)");
  t.expectEqual(content, "precious data\n", "read the regular file after listenUnix");
});

suite.test("listenExclusive explains an address already in use", async (t) => {
  const { listenExclusive } = await load(t);
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => holder.close());
  const port = holder.addr.port;
  await t.expectError(
    `listenExclusive("127.0.0.1", ${port}) while the grader listens there`,
    () => {
      const listener = listenExclusive("127.0.0.1", port);
      t.defer(() => listener.close());
    },
    { name: "AddressInUseError", what: "naming the address", message: `127.0.0.1:${port}` },
  );
  const free = await t.step(
    'listenExclusive("127.0.0.1", 0) where nothing listens',
    () => listenExclusive("127.0.0.1", 0),
  );
  free.close();
});

const GREETING = "héllo from the grader — 世界, greetings\n";

for (const split of [[1], [3, 1, 7], [1000]]) {
  suite.test(`fetchGreeting reads the whole greeting (sent in chunks of ${split.join(", ")})`, async (t) => {
    const { fetchGreeting } = await load(t);
    const server = t.serve(async (conn) => {
      await conn.send(GREETING, { split });
      await conn.conn.closeWrite();
      await conn.expectEnd({ step: "wait for your client to close after the greeting" });
    });
    const text = await t.step("fetchGreeting(grader's address)", () => fetchGreeting(server.addr));
    t.expectEqual(
      text,
      GREETING,
      "the greeting fetchGreeting returned",
      "read until read() returns null, and decode multi-byte characters split across reads whole",
    );
    await t.step("the grader's server finishes", () => server.settled());
  });
}

suite.test("greet tells the client both addresses, then closes", async (t) => {
  const { greet } = await load(t);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  t.defer(() => listener.close());
  const accepted = listener.accept();
  const client = await t.connect(listener.addr, "client");
  const conn = await accepted;
  const clientAddr = client.conn.localAddr as Deno.NetAddr;
  await t.step("greet(conn)", () => greet(conn));
  await client.expect(
    `hello 127.0.0.1:${clientAddr.port}, you reached 127.0.0.1:${listener.addr.port}\n`,
    { step: "read the greeting" },
  );
  await client.expectEnd({ step: "the server closes after greeting", cleanly: true });
});
