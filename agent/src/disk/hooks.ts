import { spawn } from 'node:child_process';
import { FerryError } from '@ferry/protocol';

type Log = (line: string) => void;

const KEEP_OUTPUT = 2000;

/**
 * Runs a pre/post hook command with /bin/sh on the source (e.g. stop a database before the final cycle's
 * reads, start it after). Its output goes to the log; a non-zero exit throws HOOK_FAILED with the end of it.
 */
export function runHook(which: 'pre' | 'post', command: string, log: Log): Promise<void> {
  log(`running the ${which}-hook: ${command}`);
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer): void => {
      output = (output + b.toString('utf8')).slice(-KEEP_OUTPUT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => reject(new FerryError('HOOK_FAILED', `the ${which}-hook could not be started: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      const tail = output.trim();
      if (tail) log(`${which}-hook output: ${tail}`);
      if (code === 0) {
        log(`the ${which}-hook succeeded`);
        resolve();
      } else {
        reject(new FerryError('HOOK_FAILED', `the ${which}-hook \`${command}\` ${signal ? `was killed by ${signal}` : `exited with status ${code}`}${tail ? `: ${tail.slice(-500)}` : ''}`));
      }
    });
  });
}
