import { readFileSync } from 'node:fs';
import { FerryError } from '@ferry/protocol';

/** A passphrase file: its first line (a trailing newline is not part of the passphrase). */
export function readPassphraseFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FerryError('CONFIG_INVALID', `cannot read the passphrase file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text.replace(/\r?\n$/, '');
}

/** Asks on the terminal without echoing what is typed. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return Promise.reject(new FerryError('CONFIG_INVALID', 'no passphrase: give --passphrase-file FILE (or FERRY_PASSPHRASE_FILE), or run this on a terminal to type it'));
  }
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (err?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (data: string): void => {
      for (const c of data) {
        if (c === '\r' || c === '\n') return done();
        if (c === '\u0003' || c === '\u0004') return done(new FerryError('BAD_REQUEST', 'cancelled: no passphrase given'));
        if (c === '\u007f' || c === '\b') typed = [...typed].slice(0, -1).join('');
        else if (c >= ' ') typed += c;
      }
    };
    stdin.on('data', onData);
  });
}

/** From --passphrase-file, FERRY_PASSPHRASE_FILE, or typed (twice when `confirm`, for a new passphrase). */
export async function passphraseFrom(file: string | undefined, opts: { confirm?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const path = file ?? (opts.env ?? process.env).FERRY_PASSPHRASE_FILE;
  if (path) return readPassphraseFile(path);
  const first = await promptHidden(opts.confirm ? 'New passphrase: ' : 'Passphrase: ');
  if (opts.confirm && (await promptHidden('Passphrase again: ')) !== first) throw new FerryError('BAD_REQUEST', 'the two passphrases differ; nothing was changed');
  return first;
}
