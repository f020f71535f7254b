import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitSqlStatements } from './splitSqlStatements.ts';

test('splits at top-level semicolons and drops empty and comment-only pieces', () => {
  assert.deepEqual(
    splitSqlStatements('-- header\nCREATE TABLE a (x int);\n\nSELECT 1;\n-- end\n'),
    ['-- header\nCREATE TABLE a (x int)', 'SELECT 1'],
  );
});

test('leaves semicolons inside literals, identifiers, comments and dollar quotes alone', () => {
  const script = [
    "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
    'SELECT 1 AS "odd;name"',
    'SELECT 2 /* not; here */',
    'CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql',
    'DO $$ BEGIN PERFORM 1; END $$',
  ];
  assert.deepEqual(splitSqlStatements(`${script.join(';\n')};`), script);
});

test('a positional parameter is not mistaken for a dollar quote', () => {
  assert.deepEqual(splitSqlStatements('SELECT $1; SELECT 2'), ['SELECT $1', 'SELECT 2']);
});
