-- 0012: a message recovered from a recording whose recorder died mid-call (the caller was
-- cut off, so the message may end mid-word and may be shorter than the normal minimum).
-- Shown in the inbox, the e-mail and the message.created event.
ALTER TABLE messages ADD COLUMN interrupted boolean NOT NULL DEFAULT false;
