-- 0004: the format of the audio attached to a notification e-mail: 'wav' (the stored message as
-- it is) or 'mp3' (about a fifth of the size, for mailboxes that cap attachments). A domain
-- default with a per-user override, like the other settings in user_effective_settings.
ALTER TABLE domains
    ADD COLUMN email_audio_format text NOT NULL DEFAULT 'wav'
        CHECK (email_audio_format IN ('wav', 'mp3'));
ALTER TABLE users
    ADD COLUMN email_audio_format text CHECK (email_audio_format IN ('wav', 'mp3'));

CREATE OR REPLACE VIEW user_effective_settings AS
SELECT u.id                                                  AS user_id,
       u.username                                            AS username,
       d.name                                                AS domain,
       COALESCE(u.quota_bytes, d.quota_bytes)                AS quota_bytes,
       COALESCE(u.max_messages, d.max_messages)              AS max_messages,
       COALESCE(u.max_message_seconds, d.max_message_seconds) AS max_message_seconds,
       COALESCE(u.ring_timeout_seconds, d.ring_timeout_seconds) AS ring_timeout_seconds,
       COALESCE(u.email_attaches_audio, d.email_attaches_audio) AS email_attaches_audio,
       COALESCE(u.email_audio_format, d.email_audio_format)  AS email_audio_format
FROM users u
JOIN domains d ON d.id = u.domain_id;
