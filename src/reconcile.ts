// Compares every user's total in Redis with the sum of their purchases in PostgreSQL:
// `npm run reconcile`, the same as `spendstream reconcile`. Exit status 0 when all agree,
// 1 when some differ, 2 when the comparison itself failed (message on stderr).
import { runReconcile } from './cli/reconcile.ts';
import { loadConfig } from './config.ts';

// exitCode rather than exit(): the report may still be flushing to a pipe.
process.exitCode = await runReconcile({
  loadConfig: () => loadConfig(),
  stdout: process.stdout,
  stderr: process.stderr,
});
