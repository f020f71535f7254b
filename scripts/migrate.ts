// Creates the database when missing and applies pending migrations: `npm run migrate`.
import { openMigratedDatabase } from '../src/adapters/postgres/database.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'migrate' });
const { pool, applied } = await openMigratedDatabase(config.postgres);
await pool.end();
log.info(applied.length === 0 ? 'schema up to date' : 'migrations applied', { applied });
