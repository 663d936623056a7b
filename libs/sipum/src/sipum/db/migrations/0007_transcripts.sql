-- 0007: transcripts of voice messages (the transcriber service) and who wants them.
--
-- One transcript per message, keyed by the message id and deleted with it. The text is
-- searchable with PostgreSQL full-text search: `search` is computed from the text with the
-- text-search configuration of the transcript's language (stemming for the languages
-- PostgreSQL ships a configuration for, `simple` otherwise) and indexed with GIN.

-- Which text-search configuration a language tag ('en-US', 'de', ...) uses. IMMUTABLE: the
-- mapping is fixed, which a generated column needs; a query passes the same tag to it.
CREATE FUNCTION transcript_search_config(language text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE split_part(lower(language), '-', 1)
        WHEN 'en' THEN 'pg_catalog.english'::regconfig
        WHEN 'de' THEN 'pg_catalog.german'::regconfig
        WHEN 'fr' THEN 'pg_catalog.french'::regconfig
        WHEN 'es' THEN 'pg_catalog.spanish'::regconfig
        WHEN 'it' THEN 'pg_catalog.italian'::regconfig
        WHEN 'nl' THEN 'pg_catalog.dutch'::regconfig
        WHEN 'pt' THEN 'pg_catalog.portuguese'::regconfig
        WHEN 'sv' THEN 'pg_catalog.swedish'::regconfig
        WHEN 'da' THEN 'pg_catalog.danish'::regconfig
        WHEN 'nb' THEN 'pg_catalog.norwegian'::regconfig
        WHEN 'no' THEN 'pg_catalog.norwegian'::regconfig
        WHEN 'fi' THEN 'pg_catalog.finnish'::regconfig
        WHEN 'ru' THEN 'pg_catalog.russian'::regconfig
        ELSE 'pg_catalog.simple'::regconfig
    END
$$;

CREATE TABLE transcripts (
    message_id     bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    -- BCP 47 tag of the language transcribed (or detected), e.g. 'en-US'.
    language       text NOT NULL CHECK (length(language) BETWEEN 2 AND 35),
    text           text NOT NULL,
    -- 0..1, NULL when the engine gives none.
    confidence     real CHECK (confidence BETWEEN 0 AND 1),
    -- [{"word": "hello", "start": 0.42, "end": 0.81, "confidence": 0.93}, ...] (seconds from
    -- the start of the message; confidence may be null).
    words          jsonb NOT NULL DEFAULT '[]',
    engine         text NOT NULL,
    engine_version text NOT NULL,
    -- How long the engine worked on it (the audio's length is the message's duration_ms).
    elapsed_ms     integer NOT NULL CHECK (elapsed_ms >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    search         tsvector GENERATED ALWAYS AS
                       (to_tsvector(transcript_search_config(language), text)) STORED
);
CREATE INDEX transcripts_search ON transcripts USING GIN (search);

-- Transcription is on unless turned off for a domain or a user (privacy); the language is the
-- domain's or the user's, NULL = the transcriber's transcription_language setting.
ALTER TABLE domains
    ADD COLUMN transcription_enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN transcription_language text CHECK (length(transcription_language) BETWEEN 2 AND 35);
ALTER TABLE users
    ADD COLUMN transcription_enabled boolean,
    ADD COLUMN transcription_language text CHECK (length(transcription_language) BETWEEN 2 AND 35);

CREATE OR REPLACE VIEW user_effective_settings AS
SELECT u.id                                                  AS user_id,
       u.username                                            AS username,
       d.name                                                AS domain,
       COALESCE(u.quota_bytes, d.quota_bytes)                AS quota_bytes,
       COALESCE(u.max_messages, d.max_messages)              AS max_messages,
       COALESCE(u.max_message_seconds, d.max_message_seconds) AS max_message_seconds,
       COALESCE(u.ring_timeout_seconds, d.ring_timeout_seconds) AS ring_timeout_seconds,
       COALESCE(u.email_attaches_audio, d.email_attaches_audio) AS email_attaches_audio,
       COALESCE(u.email_audio_format, d.email_audio_format)  AS email_audio_format,
       COALESCE(u.transcription_enabled, d.transcription_enabled) AS transcription_enabled,
       COALESCE(u.transcription_language, d.transcription_language) AS transcription_language
FROM users u
JOIN domains d ON d.id = u.domain_id;
