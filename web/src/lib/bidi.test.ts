import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isolate, needsIsolation } from './bidi.ts';
import { format } from './i18n/format.ts';

test('a name with an RTL override or right-to-left letters is isolated in a sentence; plain names and numbers are left as they are', () => {
  const hostile = 'invoice\u202Egnp.exe';
  assert.equal(format('The agent of {name} is cut off ({n} credentials).', { name: hostile, n: 2 }), 'The agent of \u2068invoice\u202Egnp.exe\u2069 is cut off (2 credentials).');
  assert.equal(format('Source {name}.', { name: 'שרת-1' }), 'Source \u2068שרת-1\u2069.');
  assert.equal(format('Source {name}.', { name: 'خادم' }), 'Source \u2068خادم\u2069.');
  assert.equal(format('Source {name}.', { name: 'web-01 数据库 サーバ /dev/vda' }), 'Source web-01 数据库 サーバ /dev/vda.');
  for (const control of ['\u200E', '\u200F', '\u061C', '\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069']) {
    assert.ok(needsIsolation(`a${control}b`), `U+${control.codePointAt(0)!.toString(16).toUpperCase()} is isolated`);
  }
  assert.equal(isolate(''), '');
  assert.ok(needsIsolation('\u{10900}'), 'Phoenician, outside the BMP');
});
