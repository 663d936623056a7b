-- 0010: the rest of the settings model (docs/administration.md, sipum.db.settings). Each new
-- attribute is a domain column and, where a user may have a value of their own, a user column
-- of the same name. Unlike the older ones, the new domain columns are NULLable: NULL means "the
-- built-in value" (a constant of sipum.db.settings, or the named service setting), so a domain
-- that never chose shows its source as the default. A user's NULL is "the domain's value".
-- delete_after_email is defined exactly as the delete-after-e-mail migration defines it
-- (domain NOT NULL DEFAULT false), with IF NOT EXISTS: whichever runs first adds it. That
-- migration must run before this one (its ADD COLUMN has no IF NOT EXISTS).
ALTER TABLE domains
    ADD COLUMN IF NOT EXISTS min_message_seconds double precision
        CHECK (min_message_seconds BETWEEN 0 AND 60),
    ADD COLUMN IF NOT EXISTS max_silence_seconds double precision
        CHECK (max_silence_seconds BETWEEN 1 AND 120),
    ADD COLUMN IF NOT EXISTS delete_after_email boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS greeting_mode text CHECK (greeting_mode IN ('auto', 'system')),
    ADD COLUMN IF NOT EXISTS prompt_language text
        CHECK (length(prompt_language) BETWEEN 2 AND 35),
    ADD COLUMN IF NOT EXISTS time_zone text CHECK (length(time_zone) BETWEEN 1 AND 64),
    ADD COLUMN IF NOT EXISTS pin_min_length integer CHECK (pin_min_length BETWEEN 4 AND 12),
    ADD COLUMN IF NOT EXISTS operator_uri text CHECK (length(operator_uri) BETWEEN 5 AND 256),
    ADD COLUMN IF NOT EXISTS message_order text CHECK (message_order IN ('newest', 'oldest')),
    ADD COLUMN IF NOT EXISTS email_notifications boolean,
    ADD COLUMN IF NOT EXISTS command_notifications boolean,
    ADD COLUMN IF NOT EXISTS mail_from text CHECK (length(mail_from) BETWEEN 3 AND 320);

ALTER TABLE users
    ADD COLUMN IF NOT EXISTS min_message_seconds double precision
        CHECK (min_message_seconds BETWEEN 0 AND 60),
    ADD COLUMN IF NOT EXISTS max_silence_seconds double precision
        CHECK (max_silence_seconds BETWEEN 1 AND 120),
    ADD COLUMN IF NOT EXISTS delete_after_email boolean,
    ADD COLUMN IF NOT EXISTS greeting_mode text CHECK (greeting_mode IN ('auto', 'system')),
    ADD COLUMN IF NOT EXISTS prompt_language text
        CHECK (length(prompt_language) BETWEEN 2 AND 35),
    ADD COLUMN IF NOT EXISTS time_zone text CHECK (length(time_zone) BETWEEN 1 AND 64),
    ADD COLUMN IF NOT EXISTS operator_uri text CHECK (length(operator_uri) BETWEEN 5 AND 256),
    ADD COLUMN IF NOT EXISTS message_order text CHECK (message_order IN ('newest', 'oldest')),
    ADD COLUMN IF NOT EXISTS email_notifications boolean,
    ADD COLUMN IF NOT EXISTS command_notifications boolean;
