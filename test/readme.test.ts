import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { SETTING_NAMES } from '../src/config.ts';
import { ERROR_CODES } from '../src/core/errors.ts';

const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
// A table row naming `name` in its first cell, however the formatter pads it.
const hasRow = (name: string) => new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, 'm').test(readme);

test('the README documents every setting', () => {
  const missing = SETTING_NAMES.filter((name) => !hasRow(name));
  assert.deepEqual(missing, []);
});

test('the README lists every error code', () => {
  const missing = ERROR_CODES.filter((code) => !hasRow(code));
  assert.deepEqual(missing, []);
});

test('the README shows the two commands a newcomer needs', () => {
  assert.match(readme, /^npm start/m);
  assert.match(readme, /^npm test/m);
});
