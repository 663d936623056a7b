-- 0018: whether a caller may mark a message urgent (key 4 in the review after the recording),
-- a setting of the settings model (docs/administration.md, sipum.db.settings): a domain
-- column (NULL = the built-in, true) and a user column of the same name (NULL = the domain's).
-- The owner may set her own (PATCH /api/v1/settings); an administrator either.
ALTER TABLE domains ADD COLUMN IF NOT EXISTS urgent_allowed boolean;
ALTER TABLE users ADD COLUMN IF NOT EXISTS urgent_allowed boolean;
