import { ERRORS, FerryError } from './errors.js';

/**
 * The exit path shared by Ferry's command-line programs. Exit codes: 2 for bad input or environment,
 * 3 for damaged data found (the message names it), 70 for a bug. The message always says what to do.
 */
export function exitWithError(program: string, err: unknown): never {
  // Commander (with exitOverride) has already printed usage errors, help and version.
  const commander = err as { code?: unknown; exitCode?: unknown };
  if (typeof commander.code === 'string' && commander.code.startsWith('commander.')) process.exit(commander.exitCode === 0 ? 0 : 2);
  if (err instanceof FerryError && err.code !== 'INTERNAL') {
    process.stderr.write(`${program}: ${err.message}\n  what to do: ${err.hint}\n  (error ${err.code})\n`);
    process.exit(ERRORS[err.code].user ? 2 : 3);
  }
  process.stderr.write(`${program}: internal error — this is a bug; please report it with this output:\n${(err as Error).stack ?? String(err)}\n`);
  process.exit(70);
}
