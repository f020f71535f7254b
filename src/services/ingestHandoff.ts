// Where a purchase goes after validation: the WebSocket server's connection actors submit
// each validated purchase here, it enters the ingest pipeline, and its outcome comes back
// to the actor that submitted it, which replies on its socket in arrival order.
import { Subject, type Observable } from 'rxjs';
import type { PurchaseResult, Outcome, Submission } from '../streams/types.ts';
import type { ReplyRef } from '../servers/connectionActor.ts';
import { failureSignal } from './lifecycle.ts';

/** What sees every submission and every outcome on the way (in-flight set, metrics). */
export interface HandoffObserver {
  /** A purchase entered the pipeline. */
  submitted(ref: ReplyRef, purchaseId: string): void;
  /** The pipeline answered the purchase submitted under `ref`. */
  answered(ref: ReplyRef, result: PurchaseResult): void;
  /** One batch of outcomes was delivered. */
  batchDelivered(): void;
}

/** The pipeline between the WebSocket server and the stores, as the server sees it. */
export interface IngestHandoff {
  /** Puts a validated purchase into the pipeline; its outcome goes to `submission.ref`. */
  readonly submit: (submission: Submission<ReplyRef>) => void;
  /**
   * Takes no more submissions and flushes the pipeline; resolves true once every purchase
   * submitted has been answered; false if that took longer than `timeoutMs`, or the
   * pipeline failed (then at once: nothing more will be answered).
   */
  drain(timeoutMs: number): Promise<boolean>;
  /** Settles if the pipeline failed, which only a bug can do (stages answer failures). */
  readonly failure: Promise<Error>;
}

/** Connects `pipeline` to the connection actors: submissions in, outcomes back. */
export const startIngestHandoff = (
  pipeline: (
    submissions: Observable<Submission<ReplyRef>>,
  ) => Observable<readonly Outcome<ReplyRef>[]>,
  observer: HandoffObserver,
): IngestHandoff => {
  const submissions = new Subject<Submission<ReplyRef>>();
  const { failure, report } = failureSignal();
  // True once the pipeline completed (everything answered), false if it failed.
  const finished = new Promise<boolean>((resolve) => {
    pipeline(submissions).subscribe({
      next: (outcomes) => {
        for (const { ref, result } of outcomes) {
          observer.answered(ref, result);
          ref.actor.deliver(ref, result);
        }
        observer.batchDelivered();
      },
      error: (error: unknown) => {
        report(error instanceof Error ? error : new Error(String(error)));
        resolve(false);
      },
      complete: () => resolve(true),
    });
  });
  return {
    submit: (submission) => {
      observer.submitted(submission.ref, submission.purchase.id);
      submissions.next(submission);
    },
    drain: async (timeoutMs) => {
      submissions.complete();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      try {
        return await Promise.race([finished, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },
    failure,
  };
};
