// `node src/walletHealthcheck.ts` (or dist/walletHealthcheck.js in the image): asks the
// local wallet's standard gRPC health service whether it is SERVING; exit 0 if so.
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { dirname, resolve } from 'node:path';
import { loadConfig } from './config.ts';

type Check = (
  request: { service: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: { status: string }) => void,
) => void;

const config = loadConfig();
const definition = loadSync('health/v1/health.proto', {
  includeDirs: [resolve(dirname(protoPath), '../..')],
  keepCase: true,
  enums: String,
});
const health = grpc.loadPackageDefinition(definition)['grpc'] as unknown as {
  health: { v1: { Health: grpc.ServiceClientConstructor } };
};
const host = config.grpc.host === '0.0.0.0' ? '127.0.0.1' : config.grpc.host;
const client = new health.health.v1.Health(
  `${host}:${config.grpc.port}`,
  grpc.credentials.createInsecure(),
);
const check = (client['Check'] as Check).bind(client);
check({ service: '' }, { deadline: Date.now() + 3_000 }, (error, reply) => {
  const status = error === null ? (reply?.status ?? 'UNKNOWN') : error.message;
  process.stdout.write(`${status}\n`);
  client.close();
  process.exitCode = status === 'SERVING' ? 0 : 1;
});
