import { test } from 'node:test';
import assert from 'node:assert/strict';
import { en } from './en.ts';
import { zh } from './zh.ts';
import { ja } from './ja.ts';
import { JOB_PHASES, JOB_STATES, PASSIVE_STATES, RESTORE_PHASES } from '@ferry/protocol';

const placeholders = (s: string): string[] => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();

for (const [name, dict] of Object.entries({ zh, ja }) as [string, Record<string, string>][]) {
  test(`the ${name} dictionary has exactly the keys of en, each translated`, () => {
    assert.deepEqual(Object.keys(dict).sort(), Object.keys(en).sort());
    for (const [key, text] of Object.entries(dict)) assert.ok(text.trim().length > 0, `${name}: ${key} is empty`);
  });

  test(`the ${name} dictionary uses the same {placeholders} as en in every message`, () => {
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      assert.deepEqual(placeholders(dict[key]!), placeholders(en[key]), `${name}: ${key}`);
    }
  });
}

test('every job state, phase, restore phase, alert kind and source mode the appliance sends has a message', () => {
  // Pages build these keys at run time (i18n.dyn) from protocol's values; the compiler cannot check them, this does.
  const keys = [
    ...JOB_STATES.flatMap((s) => [`state.${s}`, `stateHelp.${s}`]),
    ...JOB_PHASES.map((p) => `phase.${p}`),
    ...RESTORE_PHASES.map((p) => `rphase.${p}`),
    ...['active', 'finished', 'cancelled'].map((s) => `rstate.${s}`),
    ...['ok', 'skipped', 'failed'].map((s) => `step.${s}`),
    ...['job-error', 'job-suspended', 'restore-failed', 'storage-low'].map((k) => `alert.${k}`),
    ...PASSIVE_STATES.map((s) => `pstate.${s}`),
    'mode.active',
    'mode.passive',
  ];
  for (const k of keys) assert.ok(k in en, `en has no ${k}`);
});
