-- Snapshots of the wallet's totals, so that a wallet whose Redis lost them rebuilds from
-- here plus the tail of the topic, in time proportional to the users, not to history.
--
-- Kept per bucket of users (the wallet's 64 buckets, see src/core/buckets.ts). A bucket's
-- row holds its markers: per partition, the offset before which every record of its users
-- is included. A user's row holds their total and, per partition, the offset of the last
-- record in it, so replaying records the row already includes adds nothing. A snapshot of
-- a bucket writes the users changed since its previous one and the new markers in one
-- transaction, so the rows of a bucket always include everything before its markers.
--
-- Bound to the topic's id, not its name: the totals of a topic that was deleted and
-- created again are not the new topic's.
CREATE TABLE wallet_snapshot_buckets (
  topic_id   text        NOT NULL,
  bucket     integer     NOT NULL,
  topic      text        NOT NULL,
  markers    jsonb       NOT NULL,
  users      integer     NOT NULL DEFAULT 0,
  taken_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic_id, bucket)
);

CREATE TABLE wallet_snapshot_users (
  topic_id    text   NOT NULL,
  user_id     text   NOT NULL,
  bucket      integer NOT NULL,
  total_cents bigint NOT NULL,
  offsets     jsonb  NOT NULL,
  PRIMARY KEY (topic_id, user_id)
);

CREATE INDEX wallet_snapshot_users_bucket ON wallet_snapshot_users (topic_id, bucket);
