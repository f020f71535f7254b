import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import { translatePostgresError } from './errors.ts';
import { splitSqlStatements } from './splitSqlStatements.ts';

/** The project's migrations: `migrations/NNNN_name.sql` at the package root. */
export const MIGRATIONS_DIRECTORY = fileURLToPath(new URL('../../../migrations/', import.meta.url));

// Any fixed 64-bit key: it serialises migration runs of every process on this database.
const MIGRATION_LOCK_KEY = 7_315_102_117_031_337n;

const appliedRow = z.object({ version: z.string(), checksum: z.string() });

/** One migration file, read from disk. */
export interface Migration {
  readonly version: string;
  readonly text: string;
  readonly checksum: string;
}

/** Reads `NNNN_name.sql` files from `directory`, in the order they apply. */
export const readMigrations = async (
  directory: string = MIGRATIONS_DIRECTORY,
): Promise<Migration[]> => {
  const names = (await readdir(directory)).filter((name) => /^\d{4}_[\w-]+\.sql$/.test(name));
  names.sort();
  return Promise.all(
    names.map(async (name) => {
      const text = await readFile(`${directory}/${name}`, 'utf8');
      return {
        version: name.replace(/\.sql$/, ''),
        text,
        checksum: createHash('sha256').update(text).digest('hex'),
      };
    }),
  );
};

// Slonik's tag only takes template literals (a frozen `raw`); a statement of a migration
// file is trusted text of our own with no values, so it is shaped as one.
const rawStatement = (text: string) =>
  sql.unsafe(Object.freeze(Object.assign([text], { raw: Object.freeze([text]) })));

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, in one
 * transaction under an advisory lock, so concurrent starts apply each exactly once.
 * Fails when an applied migration's file has changed since. Returns the versions applied.
 */
export const migrate = async (
  pool: DatabasePool,
  migrations: readonly Migration[] | Promise<readonly Migration[]> = readMigrations(),
): Promise<string[]> => {
  const files = await migrations;
  try {
    return await pool.transaction(async (tx) => {
      await tx.query(
        sql.unsafe`SELECT pg_advisory_xact_lock(${String(MIGRATION_LOCK_KEY)}::bigint)`,
      );
      await tx.query(sql.unsafe`
        CREATE TABLE IF NOT EXISTS schema_migrations (
          version    text        PRIMARY KEY,
          checksum   text        NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
      const rows = await tx.any(
        sql.type(appliedRow)`SELECT version, checksum FROM schema_migrations`,
      );
      const applied = new Map(rows.map((row) => [row.version, row.checksum]));
      const done: string[] = [];
      for (const migration of files) {
        const checksum = applied.get(migration.version);
        if (checksum === migration.checksum) continue;
        if (checksum !== undefined) {
          throw new SpendstreamError(
            'internal',
            `migration ${migration.version} changed after it was applied; add a new migration instead`,
          );
        }
        for (const statement of splitSqlStatements(migration.text)) {
          await tx.query(rawStatement(statement));
        }
        await tx.query(
          sql.unsafe`INSERT INTO schema_migrations (version, checksum) VALUES (${migration.version}, ${migration.checksum})`,
        );
        done.push(migration.version);
      }
      return done;
    });
  } catch (error) {
    throw translatePostgresError(error);
  }
};
