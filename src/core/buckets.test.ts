import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, WALLET_BUCKETS } from './buckets.ts';

test('a user id always falls in the same bucket, by FNV-1a of its UTF-8 bytes', () => {
  // Reference values of 32-bit FNV-1a (as published for the empty string and "a"), mod 64:
  // a change of hash function or byte encoding moves users and must fail here.
  assert.equal(bucketOf(''), 0x811c9dc5 % 64);
  assert.equal(bucketOf('a'), 0xe40c292c % 64);
  assert.equal(bucketOf('foobar'), 0xbf9cf968 % 64);
  // UTF-8, not UTF-16 code units: "é" is the bytes c3 a9.
  let hash = 0x811c9dc5;
  for (const byte of [0xc3, 0xa9]) hash = Math.imul(hash ^ byte, 0x01000193);
  assert.equal(bucketOf('é'), (hash >>> 0) % 64);
  // The same bytes whether the id is ASCII throughout or not.
  hash = 0x811c9dc5;
  for (const byte of Buffer.from('user-😀-x', 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193);
  assert.equal(bucketOf('user-😀-x'), (hash >>> 0) % 64);
  assert.equal(bucketOf('user-42'), bucketOf('user-42'));
});

test('users spread evenly over the buckets', () => {
  const counts = new Array<number>(WALLET_BUCKETS).fill(0);
  const users = 64_000;
  for (let i = 0; i < users; i += 1) {
    const bucket = bucketOf(`user-${i}`);
    assert.ok(Number.isInteger(bucket) && bucket >= 0 && bucket < WALLET_BUCKETS);
    counts[bucket] = (counts[bucket] ?? 0) + 1;
  }
  const mean = users / WALLET_BUCKETS;
  assert.ok(Math.min(...counts) > mean * 0.9, `fullest and emptiest: ${String(counts)}`);
  assert.ok(Math.max(...counts) < mean * 1.1, `fullest and emptiest: ${String(counts)}`);
});
