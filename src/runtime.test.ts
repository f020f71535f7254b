import assert from 'node:assert/strict';
import { test } from 'node:test';

test('the suite runs on the Node.js the project brings (24 or newer)', () => {
  const major = Number(process.versions.node.split('.')[0]);
  assert.ok(major >= 24, `running on Node ${process.version}`);
});
