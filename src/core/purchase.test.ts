import assert from 'node:assert/strict';
import { test } from 'node:test';
import { centsToDecimal, decimalToCents, numberToCents, uuidv7 } from './purchase.ts';

test('decimal text converts to cents exactly', () => {
  assert.equal(decimalToCents('49.99'), 4999);
  assert.equal(decimalToCents('0.1'), 10);
  assert.equal(decimalToCents('7'), 700);
  assert.equal(decimalToCents('123456789012.34'), 12345678901234);
  assert.equal(decimalToCents('999999999999999.99'), undefined, 'past 2^53 cents');
  for (const bad of ['', '.5', '1.', '1.234', '-1', '1e3', ' 1', '0x10', '1,5']) {
    assert.equal(decimalToCents(bad), undefined, bad);
  }
});

test('JSON numbers convert through their shortest text, not float arithmetic', () => {
  assert.equal(numberToCents(49.99), 4999); // 49.99 * 100 would be 4998.999999999999
  assert.equal(numberToCents(0.29), 29); // 0.29 * 100 would be 28.999999999999996
  assert.equal(numberToCents(1e-7), undefined);
  assert.equal(numberToCents(Number.NaN), undefined);
  assert.equal(numberToCents(1.005), undefined);
});

test('cents format back to the same decimal', () => {
  assert.equal(centsToDecimal(4999), '49.99');
  assert.equal(centsToDecimal(5), '0.05');
  assert.equal(centsToDecimal(100), '1.00');
  assert.equal(centsToDecimal(-250), '-2.50');
});

test('uuidv7 is a version-7 UUID that sorts by creation time', () => {
  const early = uuidv7(1_700_000_000_000);
  const late = uuidv7(1_700_000_000_001);
  assert.match(early, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(early < late);
  assert.notEqual(uuidv7(), uuidv7());
});
