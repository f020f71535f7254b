// Reconciliation: the totals the wallet keeps against the sums of what was stored.

/** One user whose Redis total is not the sum of their purchases in PostgreSQL. */
export interface TotalDifference {
  readonly userId: string;
  /** Sum of the user's purchases; 0 when PostgreSQL has none. */
  readonly postgresCents: number;
  /** The wallet's total; 0 when Redis has none. */
  readonly redisCents: number;
}

/** What {@link reconcile} found. */
export interface ReconcileReport {
  /** Users known to either store. */
  readonly users: number;
  /** The users whose totals differ, by user id. */
  readonly differences: TotalDifference[];
}

/**
 * Compares every user's total in `actual` with the one in `expected`; a user on one side
 * only counts as 0 on the other. `actual` is streamed and may yield a user twice (as Redis
 * SCAN does); `expected` is held whole, so memory grows with the number of users.
 */
export const compareTotals = async (
  expected: ReadonlyMap<string, number>,
  actual: AsyncIterable<readonly [userId: string, cents: number]>,
): Promise<ReconcileReport> => {
  // Without this the second sighting of a user `expected` also knows would look like an
  // `actual`-only one.
  const seen = new Set<string>();
  const differences: TotalDifference[] = [];
  for await (const [userId, redisCents] of actual) {
    if (seen.has(userId)) continue;
    seen.add(userId);
    const postgresCents = expected.get(userId) ?? 0;
    if (postgresCents !== redisCents) differences.push({ userId, postgresCents, redisCents });
  }
  let users = seen.size;
  for (const [userId, postgresCents] of expected) {
    if (seen.has(userId)) continue;
    users += 1;
    differences.push({ userId, postgresCents, redisCents: 0 });
  }
  differences.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  return { users, differences };
};
