-- 0019: a message that is a forwarded copy (key 8 in the phone's main menu) names the mailbox
-- it was forwarded from (username@domain, the same domain). NULL: a message a caller left.
-- The message JSON, message.created, the inbox and the main menu's envelope ("Forwarded
-- message from …") show it.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS forwarded_from text
    CHECK (length(forwarded_from) BETWEEN 3 AND 320);
