-- Outbox recovery sets aside an entry it could not publish instead of retrying it in
-- every run ahead of the others: how often it failed, when it is tried again, and why.
ALTER TABLE outbox
  ADD COLUMN attempts        integer     NOT NULL DEFAULT 0,
  ADD COLUMN next_attempt_at timestamptz,
  ADD COLUMN last_error      text;
