import { createInterface, type Interface } from 'node:readline/promises';
import { FerryError } from '@ferry/protocol';

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
      this.say(`   what to do: ${err.hint}`);
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
