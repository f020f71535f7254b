import { createPgDriverFactory } from '@slonik/pg-driver';
import {
  createPool,
  createTypeParserPreset,
  sql,
  type DatabasePool,
  type DriverTypeParser,
} from 'slonik';
import { sqlState, translatePostgresError } from './errors.ts';

/** Settings of the PostgreSQL adapter. */
export interface PostgresConfig {
  readonly url: string;
  readonly poolSize?: number;
  readonly statementTimeoutMs?: number;
}

/**
 * Slonik's preset, except that `numeric` stays the exact decimal string PostgreSQL sent.
 * The preset would parse it with `parseFloat`, and money must never pass through a float.
 */
export const exactTypeParsers: readonly DriverTypeParser[] = [
  ...createTypeParserPreset().filter((parser) => parser.name !== 'numeric'),
  { name: 'numeric', parse: (value: string) => value },
];

/** Opens a slonik pool on `config.url` that keeps `numeric` values exact. */
export const createPostgresPool = async (config: PostgresConfig): Promise<DatabasePool> => {
  try {
    return await createPool(config.url, {
      driverFactory: createPgDriverFactory(),
      typeParsers: exactTypeParsers,
      maxPoolSize: config.poolSize ?? 10,
      statementTimeout: config.statementTimeoutMs ?? 30_000,
      connectionTimeout: 5_000,
    });
  } catch (error) {
    throw translatePostgresError(error);
  }
};

/**
 * Creates the database named in `url` when it is missing, connecting to the server's
 * `postgres` maintenance database to do so. Safe to run from several processes at once.
 */
export const ensureDatabase = async (url: string): Promise<boolean> => {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (name === '' || name === 'postgres') return false;
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const pool = await createPostgresPool({ url: maintenance.toString(), poolSize: 1 });
  try {
    const exists = await pool.exists(sql.unsafe`SELECT 1 FROM pg_database WHERE datname = ${name}`);
    if (exists) return false;
    try {
      await pool.query(sql.unsafe`CREATE DATABASE ${sql.identifier([name])}`);
      return true;
    } catch (error) {
      // 42P04 duplicate_database: another process created it between our check and now.
      if (sqlState(error) === '42P04') return false;
      throw translatePostgresError(error);
    }
  } finally {
    await pool.end();
  }
};

/** Resolves once PostgreSQL answers `SELECT 1` through `pool`; rejects translated. */
export const pingPostgres = async (pool: DatabasePool): Promise<void> => {
  try {
    await pool.query(sql.unsafe`SELECT 1`);
  } catch (error) {
    throw translatePostgresError(error);
  }
};
