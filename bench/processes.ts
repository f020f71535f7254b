// Only for test/integration/readiness.test.ts, which still imports freePort from here.
export { freePort } from '../test/harness/processes.ts';
