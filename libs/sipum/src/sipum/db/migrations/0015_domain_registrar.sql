-- 0015: each domain its own registrar (setting `registrar`, docs/administration.md): where the
-- registrar-agent REGISTERs the domain's voicemail contacts. host[:port] or sip:host[:port]
-- (sipum.db.settings.parse_registrar checks the form); NULL: the agent's `registrar` setting.
-- Domain only: users have no column for it.
ALTER TABLE domains
    ADD COLUMN IF NOT EXISTS registrar text CHECK (length(registrar) BETWEEN 1 AND 262);
