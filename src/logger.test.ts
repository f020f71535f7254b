import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StoreUnavailableError } from './core/errors.ts';
import { createLogger, createThrottledLog } from './logger.ts';

const capture = (level: Parameters<typeof createLogger>[0] = 'info') => {
  const lines: string[] = [];
  const logger = createLogger(level, { service: 'test' }, (line) => lines.push(line));
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, entries };
};

test('one JSON line per entry: level name, ISO time, msg, bindings and fields', () => {
  const { logger, lines, entries } = capture();
  logger.child({ component: 'ws' }).info('connection opened', { remote: '127.0.0.1:5' });
  assert.equal(lines.length, 1);
  assert.ok(lines[0]?.endsWith('}\n'));
  const [entry] = entries();
  assert.equal(entry?.['level'], 'info');
  assert.equal(entry?.['msg'], 'connection opened');
  assert.equal(new Date(String(entry?.['time'])).toISOString(), entry?.['time']);
  assert.equal(entry?.['service'], 'test');
  assert.equal(entry?.['component'], 'ws');
  assert.equal(entry?.['remote'], '127.0.0.1:5');
});

test('lines below the level are not written', () => {
  const { logger, entries } = capture('warn');
  logger.debug('batch inserted');
  logger.info('connection opened');
  logger.warn('store failed');
  logger.error('bug');
  assert.deepEqual(
    entries().map((entry) => entry['level']),
    ['warn', 'error'],
  );
});

test('an error under `error` keeps its name, message, code and cause', () => {
  const { logger, entries } = capture();
  const cause = new TypeError('socket hang up');
  logger.warn('persist failed', {
    error: new StoreUnavailableError('postgres', 'PostgreSQL unavailable', { cause }),
  });
  const error = entries()[0]?.['error'] as Record<string, unknown>;
  assert.equal(error['name'], 'StoreUnavailableError');
  assert.equal(error['message'], 'PostgreSQL unavailable');
  assert.equal(error['code'], 'unavailable');
  assert.equal(error['retryable'], true);
  const logged = error['cause'] as Record<string, unknown>;
  assert.equal(logged['name'], 'TypeError');
  assert.equal(logged['message'], 'socket hang up');
});

test('a message is written as it is, never used as a format string', () => {
  const { logger, entries } = capture();
  logger.info('100% done %s', { n: 1 });
  assert.equal(entries()[0]?.['msg'], '100% done %s');
});

test('a throttled log writes the first line, then holds back the rest of the interval', () => {
  const { logger, entries } = capture();
  let now = 1_000;
  const log = createThrottledLog(logger, 'warn', 60_000, () => now);
  log('publish failed', { attempt: 1 });
  now += 30_000;
  log('publish failed', { attempt: 2 });
  now += 29_999;
  log('publish failed', { attempt: 3 });
  const written = () => entries().map((entry) => [entry['attempt'], entry['suppressed']]);
  assert.deepEqual(written(), [[1, 0]]);
  // The interval over, the next line is written with how many were held back before it.
  now += 1;
  log('publish failed', { attempt: 4 });
  assert.deepEqual(written(), [
    [1, 0],
    [4, 2],
  ]);
  // The count starts again from the line written.
  now += 10;
  log('publish failed', { attempt: 5 });
  now += 60_000;
  log('publish failed', { attempt: 6 });
  assert.deepEqual(written(), [
    [1, 0],
    [4, 2],
    [6, 1],
  ]);
  assert.ok(entries().every((entry) => entry['level'] === 'warn'));
});
