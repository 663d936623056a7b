-- 0005: the notify command (-k) is a notification channel of its own, claimed and marked sent
-- like the e-mail, so a redelivered event runs it once.
ALTER TABLE notifications
    DROP CONSTRAINT notifications_channel_check,
    ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'webhook', 'command'));
