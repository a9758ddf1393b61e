import { createInterface, type Interface } from 'node:readline/promises';
import { FerryError, type ErrorCode } from '@ferry/protocol';

/**
 * What to do, said for the engineer at the VM console where the registered hint speaks of the command line
 * (`--target A,B`, passing a fingerprint): the refusal is the same, the remedy is in the hypervisor or in the
 * ferry.* kernel options.
 */
const CONSOLE_HINTS: Partial<Record<ErrorCode, string>> = {
  TARGET_COUNT_MISMATCH: 'Give the VM exactly one disk per source disk, in the same order, each at least as large as its source (in the hypervisor); then look at the disks again, or boot the ISO again.',
  FINGERPRINT_MISMATCH:
    'Compare ferry.fingerprint= with the fingerprint in the appliance UI (Appliance page) or `ferry-appliance fingerprint`. If they are the same, someone may be intercepting the connection: do not go on until that is explained.',
};

/** The VM console the engineer sees (VGA and serial): plain lines, questions with defaults. */
export class BootConsole {
  #rl: Interface | null = null;

  constructor(
    private readonly input: NodeJS.ReadableStream = process.stdin,
    private readonly output: NodeJS.WritableStream = process.stdout,
  ) {}

  say(line = ''): void {
    this.output.write(`${line}\n`);
  }

  /** A heading for each step of the wizard, so the engineer sees where they are. */
  step(n: number, title: string): void {
    this.say('');
    this.say(`== ${n}. ${title} ==`);
  }

  /** Says what went wrong and what to do, in the same shape as the command-line programs. */
  problem(err: unknown): void {
    if (err instanceof FerryError) {
      this.say(`!! ${err.message}`);
      this.say(`   what to do: ${CONSOLE_HINTS[err.code] ?? err.hint}`);
      this.say(`   (error ${err.code})`);
    } else {
      this.say(`!! ${(err as Error).message}`);
    }
  }

  async ask(question: string, fallback?: string): Promise<string> {
    this.#rl ??= createInterface({ input: this.input, output: this.output, terminal: false });
    const answer = (await this.#rl.question(`${question}${fallback !== undefined ? ` [${fallback}]` : ''}: `)).trim();
    return answer === '' && fallback !== undefined ? fallback : answer;
  }

  async yes(question: string, fallback: boolean): Promise<boolean> {
    for (;;) {
      const a = (await this.ask(`${question} (y/n)`, fallback ? 'y' : 'n')).toLowerCase();
      if (a === 'y' || a === 'yes') return true;
      if (a === 'n' || a === 'no') return false;
      this.say('   answer y or n');
    }
  }

  close(): void {
    this.#rl?.close();
  }
}
