// LVM2's text metadata ("Text Format Volume Group"): a tree of `name { … }` sections and `key = value`
// settings, where a value is a "string", an integer or a [list, of, values]; `#` starts a comment.

export type LvmValue = string | number | LvmValue[];

export interface LvmSection {
  values: Map<string, LvmValue>;
  sections: Map<string, LvmSection>;
}

type Token = { kind: 'word' | 'string'; text: string } | { kind: 'number'; value: number } | { kind: 'punct'; text: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (/\s|\0/.test(c)) {
      i++;
    } else if ('{}[]=,'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else if (c === '"') {
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        s += text[i];
        i++;
      }
      if (i >= text.length) throw new Error('unterminated string in LVM metadata');
      i++;
      tokens.push({ kind: 'string', text: s });
    } else {
      const m = /^[^\s{}[\]=,"#]+/.exec(text.slice(i, i + 256));
      const word = m?.[0] ?? c;
      i += word.length;
      if (/^-?\d+$/.test(word)) tokens.push({ kind: 'number', value: Number(word) });
      else tokens.push({ kind: 'word', text: word });
    }
  }
  return tokens;
}

/** Parses LVM2 text metadata; throws with the reason when it is malformed. */
export function parseLvmText(text: string): LvmSection {
  const tokens = tokenize(text);
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const isPunct = (t: Token | undefined, p: string): boolean => t?.kind === 'punct' && t.text === p;
  const expect = (p: string): void => {
    if (!isPunct(tokens[at], p)) throw new Error(`LVM metadata: expected "${p}" at token ${at}`);
    at++;
  };
  const value = (): LvmValue => {
    const t = tokens[at++];
    if (t === undefined) throw new Error('LVM metadata ends inside a value');
    if (t.kind === 'string') return t.text;
    if (t.kind === 'number') return t.value;
    if (t.kind === 'punct' && t.text === '[') {
      const list: LvmValue[] = [];
      while (!isPunct(peek(), ']')) {
        list.push(value());
        if (isPunct(peek(), ',')) at++;
      }
      at++;
      return list;
    }
    if (t.kind === 'word') return t.text;
    throw new Error(`LVM metadata: unexpected "${t.text}" at token ${at - 1}`);
  };
  const section = (closing: boolean): LvmSection => {
    const s: LvmSection = { values: new Map(), sections: new Map() };
    for (;;) {
      const t = peek();
      if (t === undefined) {
        if (closing) throw new Error('LVM metadata ends inside a section');
        return s;
      }
      if (isPunct(t, '}')) {
        if (!closing) throw new Error('LVM metadata: unbalanced "}"');
        at++;
        return s;
      }
      if (t.kind !== 'word' && t.kind !== 'string') throw new Error(`LVM metadata: expected a name at token ${at}`);
      at++;
      if (isPunct(peek(), '{')) {
        at++;
        s.sections.set(t.text, section(true));
      } else {
        expect('=');
        s.values.set(t.text, value());
      }
    }
  };
  return section(false);
}

export function num(s: LvmSection, key: string): number | undefined {
  const v = s.values.get(key);
  return typeof v === 'number' ? v : undefined;
}

export function str(s: LvmSection, key: string): string | undefined {
  const v = s.values.get(key);
  return typeof v === 'string' ? v : undefined;
}

export function strList(s: LvmSection, key: string): string[] {
  const v = s.values.get(key);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
