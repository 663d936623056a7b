-- 0020: a lock must reach its owner even when its mailbox.locked event was lost (NATS away at
-- the moment of locking). published_at: when mailbox.locked was last published for the
-- current lock (NULL: not yet); notified_at: when the notifier's e-mail about it went out
-- (NULL: not yet). Both are reset when a new lock begins. The media-recorder's sweep
-- re-publishes a lock still in force with notified_at NULL once published_at (or the lock's
-- last failure) is older than its retry interval; the notifier skips a lock it has told.
ALTER TABLE pin_lockouts
    ADD COLUMN IF NOT EXISTS published_at timestamptz,
    ADD COLUMN IF NOT EXISTS notified_at timestamptz;
