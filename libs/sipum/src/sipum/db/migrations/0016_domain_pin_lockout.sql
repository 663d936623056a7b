-- 0016: the PIN lockout threshold as a domain setting (docs/administration.md, sipum.db.settings):
-- wrong phone PINs, across calls, that lock a mailbox's phone access. NULL = the
-- media-recorder's pin_lockout_failures. Domain only: a user may not loosen their own lockout.
ALTER TABLE domains
    ADD COLUMN IF NOT EXISTS pin_lockout_failures integer
        CHECK (pin_lockout_failures BETWEEN 2 AND 100);
