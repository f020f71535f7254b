// The ingest service's process: `npm run ingest`. SIGTERM or SIGINT drains it.
import { startIngestService } from './services/ingestService.ts';
import { runService } from './runService.ts';

await runService('ingest', startIngestService);
