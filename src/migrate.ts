// Creates the database when missing and applies pending migrations: `npm run migrate`, or
// `node dist/migrate.js` in the image (the Kubernetes migration Job, deploy/migrate.yaml).
import { openMigratedDatabase } from './adapters/postgres/database.ts';
import { loadConfig } from './config.ts';
import { createLogger } from './logger.ts';

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'migrate' });
const { pool, applied } = await openMigratedDatabase(config.postgres);
await pool.end();
log.info(applied.length === 0 ? 'schema up to date' : 'migrations applied', { applied });
