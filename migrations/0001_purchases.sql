-- Every purchase the ingest service accepted, with its amount stored exactly (numeric,
-- never a float). The id is the client's idempotency key, or one the server assigned.
CREATE TABLE purchases (
  id         text           PRIMARY KEY,
  user_id    text           NOT NULL,
  amount     numeric(14, 2) NOT NULL CHECK (amount > 0),
  created_at timestamptz    NOT NULL DEFAULT now()
);

-- The transactional outbox: one row per inserted batch, written in the same transaction
-- as its purchases and deleted once Kafka has acknowledged the batch. Rows left here by a
-- crash or a Kafka outage are what outbox recovery publishes. Kept per batch, not per
-- purchase, so the hot path writes one extra row per batch instead of one per purchase.
CREATE TABLE outbox (
  batch_id     bigserial   PRIMARY KEY,
  purchase_ids text[]      NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
