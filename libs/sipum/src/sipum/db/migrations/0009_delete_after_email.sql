-- 0009: delete after e-mail (the old voicemail `delete` option). When a user's effective
-- delete_after_email is true and the notification mail carried the recording, the notifier sets
-- the message's expires_at (the mail's time + its delete_after_email_retention); its retention
-- sweeper deletes messages whose expires_at has passed (row, transcript by cascade, audio, then
-- message.deleted). NULL expires_at: kept until the user deletes it.
ALTER TABLE domains
    ADD COLUMN delete_after_email boolean NOT NULL DEFAULT false;
ALTER TABLE users
    ADD COLUMN delete_after_email boolean;

ALTER TABLE messages
    ADD COLUMN expires_at timestamptz;
CREATE INDEX messages_expires_at ON messages (expires_at) WHERE expires_at IS NOT NULL;

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
       COALESCE(u.transcription_language, d.transcription_language) AS transcription_language,
       COALESCE(u.delete_after_email, d.delete_after_email)  AS delete_after_email
FROM users u
JOIN domains d ON d.id = u.domain_id;
