// The ingest service's process: `npm run ingest`, in INGEST_WORKERS worker processes sharing
// its port when more than one. SIGTERM or SIGINT drains it.
import { startIngestService } from './services/ingestService.ts';
import { runService } from './runService.ts';

await runService('ingest', startIngestService, { workers: 'ingest' });
