-- 0014: a message its caller marked urgent (key 4 in the review after the recording). The
-- mailbox menu announces and plays urgent new messages first; the inbox, the e-mail and the
-- message.created event show the mark.
ALTER TABLE messages ADD COLUMN urgent boolean NOT NULL DEFAULT false;
