import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { SETTING_NAMES } from '../src/config.ts';
import { ERROR_CODES } from '../src/core/errors.ts';

const read = (path: string) => readFile(new URL(`../${path}`, import.meta.url), 'utf8');
const readme = await read('README.md');
const configuration = await read('docs/configuration.md');
const protocol = await read('docs/protocol.md');
// A table row naming `name` in its first cell, however the formatter pads it.
const hasRow = (page: string, name: string) =>
  new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, 'm').test(page);

test('docs/configuration.md documents every setting', () => {
  const missing = SETTING_NAMES.filter((name) => !hasRow(configuration, name));
  assert.deepEqual(missing, []);
});

test('docs/protocol.md lists every error code', () => {
  const missing = ERROR_CODES.filter((code) => !hasRow(protocol, code));
  assert.deepEqual(missing, []);
});

test('the README shows the two commands a newcomer needs', () => {
  assert.match(readme, /^npm start/m);
  assert.match(readme, /^npm test/m);
});
