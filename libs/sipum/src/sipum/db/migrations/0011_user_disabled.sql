-- 0011: an administrator may disable a mailbox without deleting it (docs/administration.md):
-- NULL = enabled. A disabled user cannot sign in to the web inbox or the API, the
-- registrar-agent de-registers its voicemail contact, and a call that still reaches sipum for
-- it is refused with 480. Its messages, greetings and settings stay; enabling undoes it all.
-- kamailio_subscriber is unchanged: the user's own phones keep their SIP account (and the
-- agent's de-REGISTER is authenticated with the same credentials).
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_at timestamptz;
