-- Every purchase the ingest service acknowledged, stored exactly (numeric, never float).
-- published_at stays NULL until Kafka has acknowledged the purchase: the rows still NULL
-- are the outbox that recovery publishes after a crash.
CREATE TABLE purchases (
  id           text           PRIMARY KEY,
  user_id      text           NOT NULL,
  amount       numeric(14, 2) NOT NULL CHECK (amount > 0),
  created_at   timestamptz    NOT NULL DEFAULT now(),
  published_at timestamptz
);

CREATE INDEX purchases_unpublished_idx ON purchases (created_at) WHERE published_at IS NULL;
CREATE INDEX purchases_user_id_idx ON purchases (user_id);
