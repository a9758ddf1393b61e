import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SerialRuns } from './serial.js';

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

void test('SerialRuns never runs twice at once; calls during a run share one more run after it', async () => {
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  const gates = [gate(), gate()];
  const serial = new SerialRuns<number, string>(async (progress) => {
    const n = runs++;
    active++;
    maxActive = Math.max(maxActive, active);
    progress(`run ${n}`);
    await gates[n]!.wait;
    active--;
    return n;
  });
  const seen: string[] = [];
  const first = serial.run((p) => seen.push(`a:${p}`));
  const second = serial.run((p) => seen.push(`b:${p}`));
  const third = serial.run((p) => seen.push(`c:${p}`));
  assert.equal(second, third);
  gates[0]!.open();
  assert.equal(await first, 0);
  gates[1]!.open();
  assert.equal(await second, 1);
  assert.equal(runs, 2);
  assert.equal(maxActive, 1);
  assert.deepEqual(seen, ['a:run 0', 'b:run 1', 'c:run 1']);
});

void test('SerialRuns starts the queued run after a failed one, and a caller reacting to a finished run starts no parallel one', async () => {
  let runs = 0;
  let active = 0;
  let maxActive = 0;
  const serial = new SerialRuns<number, never>(async () => {
    const n = runs++;
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    if (n === 0) throw new Error('first fails');
    return n;
  });
  const first = serial.run();
  const queued = serial.run();
  const late = first.catch(() => serial.run());
  await assert.rejects(first, /first fails/);
  assert.equal(await queued, 1);
  assert.equal(await late, 2);
  assert.equal(maxActive, 1);
});
