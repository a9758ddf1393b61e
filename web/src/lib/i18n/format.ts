import { isolate } from '../bidi.ts';

/** Fills {placeholders}; a string value is isolated (bidi.ts), so a name cannot reorder the sentence it is in. */
export function format(text: string, vars?: Record<string, string | number>): string {
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => {
    if (!(name in vars)) return m;
    const v = vars[name]!;
    return typeof v === 'string' ? isolate(v) : String(v);
  });
}
