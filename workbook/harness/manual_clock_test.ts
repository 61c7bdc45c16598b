import assert from "node:assert/strict";
import { ManualClock } from "./manual_clock.ts";

Deno.test("ManualClock fires timeouts and intervals in time order, at their due time", () => {
  const clock = new ManualClock();
  const seen: string[] = [];
  clock.setInterval(() => seen.push(`beat@${clock.now()}`), 30);
  clock.setTimeout(() => seen.push(`once@${clock.now()}`), 45);
  assert.equal(clock.advance(100), 4);
  assert.deepEqual(seen, ["beat@30", "once@45", "beat@60", "beat@90"]);
  assert.equal(clock.now(), 100);
  assert.equal(clock.pending, 1);
});

Deno.test("ManualClock runs timers due at the same moment in scheduling order", () => {
  const clock = new ManualClock(1000);
  const seen: number[] = [];
  for (const n of [1, 2, 3]) clock.setTimeout(() => seen.push(n), 10);
  clock.advance(10);
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("ManualClock: timers scheduled and cleared by callbacks take effect in the same advance", () => {
  const clock = new ManualClock();
  const seen: string[] = [];
  let interval: number | undefined = undefined;
  clock.setTimeout(() => {
    seen.push(`a@${clock.now()}`);
    clock.setTimeout(() => seen.push(`b@${clock.now()}`), 5);
    clock.clearInterval(interval);
  }, 10);
  interval = clock.setInterval(() => seen.push(`never@${clock.now()}`), 12);
  clock.advance(20);
  assert.deepEqual(seen, ["a@10", "b@15"]);
  assert.equal(clock.pending, 0);
});

Deno.test("ManualClock: methods stay bound and ignore unknown ids", () => {
  const clock = new ManualClock();
  const { now, setTimeout, clearTimeout } = clock;
  const id = setTimeout(() => {}, 5);
  clearTimeout(undefined);
  clearTimeout(9999);
  assert.equal(clock.pending, 1);
  clearTimeout(id);
  assert.equal(clock.pending, 0);
  clock.advance(7);
  assert.equal(now(), 7);
});

Deno.test("ManualClock: a throwing callback stops the advance at its due time", () => {
  const clock = new ManualClock();
  clock.setTimeout(() => {
    throw new Error("boom");
  }, 10);
  const later = clock.setTimeout(() => {}, 20);
  assert.throws(() => clock.advance(50), /boom/);
  assert.equal(clock.now(), 10);
  assert.deepEqual(clock.timers(), [{ id: later, due: 20 }]);
});

Deno.test("ManualClock stops a timer that reschedules itself forever", () => {
  const clock = new ManualClock();
  const again = () => void clock.setTimeout(again, 0);
  clock.setTimeout(again, 0);
  assert.throws(() => clock.advance(1), /reschedul/);
});

Deno.test("ManualClock: intervals are at least 1 ms and negative advances are refused", () => {
  const clock = new ManualClock();
  let beats = 0;
  clock.setInterval(() => beats++, 0);
  clock.advance(5);
  assert.equal(beats, 5);
  assert.throws(() => clock.advance(-1), RangeError);
});
