import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '../logger.ts';
import { startHttpServer } from './http.ts';

const quiet = createLogger('error', {}, () => undefined);

/** Sends `request` as raw bytes and resolves with the whole response text. */
const raw = (port: number, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });

test('routes by path, ignoring the query; unknown paths are 404; a throwing route is 500', async () => {
  const server = await startHttpServer(
    { host: '127.0.0.1', port: 0 },
    {
      '/ok': (_request, response) => void response.writeHead(200).end('fine'),
      '/boom': () => {
        throw new Error('route bug');
      },
    },
    quiet,
  );
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const ok = await fetch(`${base}/ok?x=1`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'fine');
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/boom`)).status, 500);
  } finally {
    await server.close();
  }
});

test('request targets that are not URLs get an answer, and the server keeps serving', async () => {
  const server = await startHttpServer(
    { host: '127.0.0.1', port: 0 },
    { '/ok': (_request, response) => void response.writeHead(200).end('fine') },
    quiet,
  );
  try {
    for (const target of ['http://[', 'http://[::1', '//', '*', '%zz', 'http://x:99999/ok']) {
      const response = await raw(
        server.port,
        `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      assert.match(response, /^HTTP\/1\.1 (400|404) /, `${target}: ${response.slice(0, 40)}`);
    }
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/ok`)).status, 200);
  } finally {
    await server.close();
  }
});
