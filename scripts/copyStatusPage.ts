// `npm run build`, after tsc: the status page's static files go beside the compiled
// server (dist/servers/status/), which reads them relative to its own module.
import { cpSync } from 'node:fs';
import { ROOT } from './infra.ts';

cpSync(`${ROOT}src/servers/status`, `${ROOT}dist/servers/status`, {
  recursive: true,
  // Types and tests are for the checkout, not for the page.
  filter: (path) => !/\.(d|test)\.ts$/.test(path),
});
