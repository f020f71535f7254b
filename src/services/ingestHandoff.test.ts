import assert from 'node:assert/strict';
import { test } from 'node:test';
import { map, NEVER, throwError, type Observable } from 'rxjs';
import type { ConnectionActor, ReplyRef } from '../servers/connectionActor.ts';
import type { Outcome, PurchaseResult, Submission } from '../streams/types.ts';
import { startIngestHandoff, type HandoffObserver } from './ingestHandoff.ts';

/** A reply ref whose actor records what it was told to deliver. */
const refFor = (purchaseId: string, delivered: string[]): ReplyRef =>
  ({
    actor: {
      deliver: (ref: ReplyRef, result: PurchaseResult) =>
        delivered.push(`${ref.purchaseId}:${result.status}`),
    } as unknown as ConnectionActor,
    frame: {} as ReplyRef['frame'],
    index: 0,
    purchaseId,
  }) satisfies ReplyRef;

const submission = (ref: ReplyRef): Submission<ReplyRef> => ({
  ref,
  purchase: { id: ref.purchaseId, userId: 'u', amountCents: 100 },
});

const recordingObserver = (log: string[]): HandoffObserver => ({
  submitted: (_ref, id) => log.push(`submitted ${id}`),
  answered: (ref, result) => log.push(`answered ${ref.purchaseId} ${result.status}`),
  batchDelivered: () => log.push('batch'),
});

/** Acks each submission at once, one outcome batch per submission. */
const ackAll = (submissions: Observable<Submission<ReplyRef>>) =>
  submissions.pipe(
    map((s): readonly Outcome<ReplyRef>[] => [
      { ref: s.ref, result: { status: 'ack', id: s.purchase.id, duplicate: false } },
    ]),
  );

test('a submitted purchase enters the pipeline and its outcome reaches its actor', async () => {
  const delivered: string[] = [];
  const log: string[] = [];
  const handoff = startIngestHandoff(ackAll, recordingObserver(log));
  handoff.submit(submission(refFor('p1', delivered)));
  handoff.submit(submission(refFor('p2', delivered)));
  assert.equal(await handoff.drain(1_000), true);
  assert.deepEqual(delivered, ['p1:ack', 'p2:ack']);
  assert.deepEqual(log, [
    'submitted p1',
    'answered p1 ack',
    'batch',
    'submitted p2',
    'answered p2 ack',
    'batch',
  ]);
});

test('a drain the pipeline does not finish in time answers false', async () => {
  const handoff = startIngestHandoff(() => NEVER, recordingObserver([]));
  assert.equal(await handoff.drain(20), false);
});

test('a failed pipeline settles failure with its error; a drain answers false at once', async () => {
  const handoff = startIngestHandoff(
    () => throwError(() => new Error('stage bug')),
    recordingObserver([]),
  );
  assert.match((await handoff.failure).message, /stage bug/);
  assert.equal(await handoff.drain(60_000), false);
});
