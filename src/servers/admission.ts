/** Something whose reading can be paused: a socket. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/** Bounds of {@link createAdmission}. */
export interface AdmissionLimits {
  /** Unacked purchases allowed across every connection before reading pauses. */
  readonly maxUnacked: number;
  /** Unacked purchases allowed on one connection before reading it pauses. */
  readonly maxUnackedPerConnection: number;
}

/** One connection's share of the admission budget. */
export interface AdmissionTicket {
  /** Counts purchases entering the pipeline; pauses reading when over a limit. */
  admit(count: number): void;
  /** Counts purchases answered; resumes reading once back under half the limits. */
  release(count: number): void;
  /** Whether `count` more purchases would exceed twice the global limit (refuse them). */
  wouldOverflow(count: number): boolean;
  /** Forgets the connection. */
  close(): void;
  readonly unacked: number;
}

/**
 * Backpressure for the ingest service: counts unacked purchases per connection and in
 * total, and pauses reading from sockets (TCP then pushes back on the client) instead of
 * queueing without limit. Reading resumes at half the limit, so a socket does not flap.
 */
export const createAdmission = (limits: AdmissionLimits) => {
  let total = 0;
  const paused = new Map<Pausable, () => boolean>();

  const resumeWhatFits = () => {
    if (total > limits.maxUnacked / 2) return;
    for (const [socket, fits] of paused) {
      if (fits()) {
        paused.delete(socket);
        socket.resume();
      }
    }
  };

  return {
    get unacked() {
      return total;
    },
    /** Opens the budget of one connection. */
    open(socket: Pausable): AdmissionTicket {
      let own = 0;
      const fits = () => own <= limits.maxUnackedPerConnection / 2;
      return {
        get unacked() {
          return own;
        },
        admit(count) {
          own += count;
          total += count;
          if (
            (own >= limits.maxUnackedPerConnection || total >= limits.maxUnacked) &&
            !paused.has(socket)
          ) {
            paused.set(socket, fits);
            socket.pause();
          }
        },
        release(count) {
          own -= count;
          total -= count;
          resumeWhatFits();
        },
        wouldOverflow: (count) => total + count > limits.maxUnacked * 2,
        close() {
          total -= own;
          own = 0;
          paused.delete(socket);
          resumeWhatFits();
        },
      };
    },
  };
};

/** The admission control of one ingest service. */
export type Admission = ReturnType<typeof createAdmission>;
