/*
 * Loaded into the appliance with NODE_OPTIONS="--import tsx --import …/cpu-profile-preload.ts" (node refuses --cpu-prof
 * in NODE_OPTIONS, and the appliance is started by test/lib/cli.ts): profiles the whole process with the inspector's
 * sampling profiler: the first SIGUSR2 starts it, the second writes the profile to $FERRY_BENCH_CPU_PROFILE, so the
 * profile covers what the bench ran in between and not the start-up.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.FERRY_BENCH_CPU_PROFILE;
if (out) {
  const session = new Session();
  session.connect();
  let running = false;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    session.post('Profiler.stop', (err, result) => {
      if (err) throw err;
      writeFileSync(`${out}.partial`, JSON.stringify(result.profile));
      renameSync(`${out}.partial`, out);
    });
  });
}
