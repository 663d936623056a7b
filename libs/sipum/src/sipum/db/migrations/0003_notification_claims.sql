-- A notification is claimed ('sending') before the mail goes out and marked 'sent' after the
-- SMTP server accepted it, so two deliveries of the same event (a redelivery while the first
-- is still sending, or two notifier replicas) never both send. A claim left by a crashed
-- notifier goes stale and can be taken over.
ALTER TABLE notifications
    ADD COLUMN state text NOT NULL DEFAULT 'sent' CHECK (state IN ('sending', 'sent')),
    ADD COLUMN claimed_at timestamptz NOT NULL DEFAULT now();
