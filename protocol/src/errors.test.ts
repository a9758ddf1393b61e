import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS, isErrorCode, type ErrorCode } from './errors.js';

/*
 * docs/errors.md is what users read when a program prints a code: it must name every code the registry has,
 * and no code the registry lacks, with the same status, kind and hint.
 */

const DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

interface DocRow {
  code: string;
  cells: string[];
}

/** Table rows whose first cell is a backticked UPPER_SNAKE code: `| \`CODE\` | ... |`. */
function documentedRows(): DocRow[] {
  const rows: DocRow[] = [];
  for (const line of DOC.split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    // Cells are split on pipes not escaped as \| (none of today's hints has one, but Markdown allows it).
    const cells = m[2]!.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
    rows.push({ code: m[1]!, cells });
  }
  return rows;
}

const CODES = Object.keys(ERRORS) as ErrorCode[];

test('docs/errors.md documents every error code', () => {
  const documented = new Set(documentedRows().map((r) => r.code));
  const missing = CODES.filter((c) => !documented.has(c));
  assert.deepEqual(missing, [], `add a row to docs/errors.md for: ${missing.join(', ')}`);
});

test('docs/errors.md names no code that the registry does not have', () => {
  const unknown = documentedRows()
    .map((r) => r.code)
    .filter((c) => !isErrorCode(c));
  assert.deepEqual(unknown, [], `docs/errors.md names codes that protocol/src/errors.ts lacks: ${unknown.join(', ')}`);
});

test('docs/errors.md has one row per code', () => {
  const seen = new Map<string, number>();
  for (const r of documentedRows()) seen.set(r.code, (seen.get(r.code) ?? 0) + 1);
  const repeated = [...seen].filter(([, n]) => n > 1).map(([c]) => c);
  assert.deepEqual(repeated, []);
});

test('docs/errors.md gives each code its HTTP status, kind and hint', () => {
  for (const r of documentedRows()) {
    if (!isErrorCode(r.code)) continue;
    const e = ERRORS[r.code];
    const [status, kind, meaning, hint] = r.cells;
    assert.equal(status, e.status === 0 ? 'client-side' : String(e.status), `${r.code}: HTTP status column`);
    assert.equal(kind, e.user ? 'user error' : 'bug or damage', `${r.code}: kind column`);
    assert.ok(meaning && meaning.length > 0, `${r.code}: meaning column is empty`);
    assert.equal(hint, e.hint, `${r.code}: the hint column must be the registry's hint, word for word`);
  }
});

test('every hint is a non-empty sentence', () => {
  for (const code of CODES) {
    const hint: string = ERRORS[code].hint;
    assert.equal(hint, hint.trim(), `${code}: hint has surrounding whitespace`);
    assert.match(hint, /^[A-Z]/, `${code}: hint must start with a capital letter`);
    assert.match(hint, /[.!?]$/, `${code}: hint must end with a full stop`);
    assert.ok(hint.split(/\s+/).length >= 3, `${code}: hint is too short to tell anyone what to do`);
  }
});

test('client-side codes have status 0 and every other code an HTTP error status', () => {
  for (const code of CODES) {
    const { status } = ERRORS[code];
    assert.ok(status === 0 || (status >= 400 && status <= 599), `${code}: status ${status}`);
  }
});
