// Property-based fuzzing of the WebSocket protocol against the ingest service running as
// its own process: every frame answered once, by the documented reply; nothing invalid
// stored; every ack stored and published exactly as meant — while a well-behaved client
// keeps its acks.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { reliabilityLevel } from '../../helpers.ts';
import { countById, readTopic } from '../../kafkaHelpers.ts';
import { connectClient, type Reply } from '../../wsClient.ts';
import {
  allPurchases,
  ruleBroken,
  startIngestChild,
  startProbe,
  storedCents,
  within,
  type IngestChild,
  type ProbeReport,
} from '../hostileServices.ts';
import { recordFigures } from '../results.ts';
import { EDGE_SESSIONS } from './edges.ts';
import { sessionSpec } from './generators.ts';
import { expectText, Ledger, type FrameExpectation } from './oracle.ts';
import {
  checkIntent,
  MAX_ARRAY_LENGTH,
  MAX_FRAME_BYTES,
  renderFrame,
  renderTerminal,
  type Session,
} from './sessions.ts';

const FULL = reliabilityLevel === 'full';

const FUZZ_RUNS = FULL ? 1_500 : 150;

describe('fuzzing the WebSocket protocol', () => {
  let ingest: IngestChild | undefined;

  before(async () => {
    ingest = await startIngestChild({
      INGEST_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
      INGEST_MAX_ARRAY_LENGTH: String(MAX_ARRAY_LENGTH),
    });
  });

  after(() => ingest?.close());

  test('every frame gets its documented reply, nothing invalid is stored, every ack is exact', async () => {
    assert.ok(ingest !== undefined);
    const service = ingest;
    const ledger = new Ledger();
    let runs = 0;
    let framesSent = 0;
    const closes: Record<number, number> = {};
    service.process.resetPeakRss();
    const probe = await startProbe(service.url, { prefix: 'fuzz-probe' });
    let probeReport: ProbeReport | undefined;
    try {
      const property = fc.asyncProperty(sessionSpec, async (session) => {
        runs += 1;
        const prefix = `r${runs}.`;
        const client = await connectClient(service.url);
        try {
          const expected: FrameExpectation[] = [];
          for (const frame of session.frames) {
            if (frame.kind === 'binary') {
              framesSent += 1;
              client.socket.send(Buffer.from(frame.bytes), { binary: true });
              expected.push({ kind: 'frameError', code: 'unsupported_frame' });
              continue;
            }
            checkIntent(frame);
            // What the server decodes: lone surrogates in raw text travel as U+FFFD.
            const bytes = Buffer.from(renderFrame(frame, prefix), 'utf8');
            if (bytes.length > MAX_FRAME_BYTES) continue;
            framesSent += 1;
            client.socket.send(bytes, { binary: false });
            expected.push(expectText(bytes.toString('utf8'), MAX_ARRAY_LENGTH));
          }
          // A known last frame: its reply proves no frame got two replies or none.
          client.send('[]');
          const replies = await client.take(expected.length + 1, 30_000);
          expected.forEach((e, i) => ledger.checkFrame(replies[i], e, `frame ${i}`));
          assert.deepEqual(replies.at(-1), { status: 'batch', acked: 0, failed: 0, results: [] });
          await sleep(5);
          assert.equal(client.waiting, 0, 'no reply beyond one per frame');
          if (session.terminal !== null) {
            const terminal = renderTerminal(session.terminal);
            client.socket.send(terminal.bytes, { binary: terminal.binary });
            const code = await within(client.closed, 15_000, 'not closed within 15 s');
            assert.equal(code, terminal.code, `closed after ${session.terminal.kind}`);
            closes[terminal.code] = (closes[terminal.code] ?? 0) + 1;
          }
        } finally {
          await client.close();
        }
        assert.ok(service.alive(), 'the ingest process is still running');
      });
      // A failure prints its seed and counterexample; replay it with the same level.
      await fc.assert(property, {
        numRuns: FUZZ_RUNS,
        examples: EDGE_SESSIONS.map((session): [Session] => [session]),
      });
    } finally {
      probeReport = await probe.stop();
    }
    assert.ok(service.alive(), 'the ingest process is still running');
    assert.deepEqual(probeReport.failures, [], 'the well-behaved client got every ack');
    assert.ok(probeReport.acked.length > 0);

    // Nothing invalid stored; every ack stored exactly as meant; nothing stored unacked.
    const rows = await allPurchases(service.pool);
    for (const row of rows) assert.equal(ruleBroken(row), undefined, JSON.stringify(row));
    const expected = new Map(ledger.acked);
    for (const p of probeReport.acked) expected.set(p.id, { userId: p.userId, cents: p.cents });
    const rowById = new Map(rows.map((row) => [row.id, row]));
    for (const [id, meant] of expected) {
      const row = rowById.get(id);
      assert.ok(row !== undefined, `acked ${id} is stored`);
      assert.deepEqual(
        { userId: row.user_id, cents: storedCents(row.amount) },
        meant,
        `acked ${id} is stored as sent`,
      );
    }
    assert.equal(rows.length, expected.size, 'every stored purchase was acked');
    // …and published once, keyed by its user.
    const records = await readTopic(service.kafka, service.topic);
    const counts = countById(records);
    for (const record of records) {
      const id = String(record.value['id']);
      const meant = expected.get(id);
      assert.ok(meant !== undefined, `published ${id} was acked`);
      assert.equal(counts.get(id), 1, `${id} published once`);
      assert.equal(record.key, meant.userId, `${id} keyed by its user`);
      assert.equal(record.value['user_id'], meant.userId);
      assert.equal(record.value['amount_cents'], meant.cents);
    }
    assert.equal(records.length, expected.size, 'every ack published');
    recordFigures({
      scenario: 'hostile-fuzz',
      sent: framesSent,
      acked: ledger.acked.size,
      refused: ledger.errors,
      lost: 0,
      doubleCounted: 0,
      peakRssMiB: service.peakRssMiB(),
      extra: {
        runs,
        replies: ledger.replies,
        closed1009: closes[1009] ?? 0,
        closed1007: closes[1007] ?? 0,
        probeAcked: probeReport.acked.length,
        probeMaxReplyMs: probeReport.maxReplyMs,
      },
    });
  });

  // A user_id holding a lone surrogate, valid JSON (`"\ud800"`) but not a character, was
  // once acked and then stored in PostgreSQL and keyed in Kafka as U+FFFD: the stored
  // purchase was not the acked one, and distinct users ("\ud800", "\udbff") became one.
  test('a user_id holding a lone surrogate is refused, or stored and published exactly as acked', async () => {
    assert.ok(ingest !== undefined);
    const service = ingest;
    const userIds = ['\ud800', '\udbff', 'a\udc00z', 'pair-reversed-\ude00\ud83d'];
    const client = await connectClient(service.url);
    client.send(
      userIds.map((userId, i) => ({
        id: `lone-surrogate-${i}`,
        user_id: userId,
        amount: '2.00',
      })),
    );
    const reply = await client.next(10_000);
    await client.close();
    assert.equal(reply.status, 'batch');
    const rows = new Map((await allPurchases(service.pool)).map((row) => [row.id, row]));
    const records = await readTopic(service.kafka, service.topic);
    (reply.results as Reply[]).forEach((result, i) => {
      const userId = userIds[i];
      if (result.status !== 'ack') {
        assert.equal(result.code, 'invalid_purchase');
        assert.equal(result.field, 'user_id');
        return;
      }
      const id = `lone-surrogate-${i}`;
      assert.equal(rows.get(id)?.user_id, userId, `${id} stored with the user it was acked for`);
      const record = records.find((r) => r.value['id'] === id);
      assert.equal(record?.key, userId, `${id} keyed by the user it was acked for`);
    });
  });
});
