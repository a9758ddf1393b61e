/** One line per event, for the journal or a terminal; the daemon's only output. */
export type Log = (line: string) => void;

/** Prefixes each line with an ISO timestamp, so lines read the same in the journal, a file or a terminal. */
export function timestampedLog(sink: { write(s: string): unknown } = process.stderr, now: () => Date = () => new Date()): Log {
  return (line) => {
    sink.write(`${now().toISOString()} ${line}\n`);
  };
}
