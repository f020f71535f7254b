-- Fencing across ingest instances. Each outbox entry names the instance whose Kafka
-- transactional ids may publish it; whoever recovers the entry of another instance first
-- initialises those ids, which aborts that instance's open transaction and refuses its
-- later ones, and only then looks in the topic for what the entry holds.
--
-- scan_from: per partition, an offset the topic had already reached before the entry was
-- committed (the instance's latest acknowledged sends), so recovery reads the topic from
-- there instead of from a time. Entries from before this migration have neither column
-- and are recovered the old way: by time, purchase by purchase.
ALTER TABLE outbox
  ADD COLUMN owner     text,
  ADD COLUMN scan_from jsonb;

-- The ingest instances alive, as each says every second. An instance's entries are
-- taken over by another only once it has been silent for the takeover age; fencing, not
-- this table, is what makes a takeover safe, so a wrong clock costs time, never money.
CREATE TABLE ingest_instances (
  id      text        PRIMARY KEY,
  seen_at timestamptz NOT NULL DEFAULT now()
);
