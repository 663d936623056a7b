-- Notifications already delivered, so a redelivered event never sends a second e-mail.
-- The notifier inserts the row after the SMTP server accepted the mail and before it acks the
-- event; on a redelivery it finds the row and only acks.
CREATE TABLE notifications (
    message_id  bigint      NOT NULL,
    channel     text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient   text        NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, channel)
);
