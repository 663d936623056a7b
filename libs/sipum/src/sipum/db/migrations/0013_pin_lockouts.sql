-- 0013: phone PIN lockout across calls. Wrong PINs are counted per mailbox here, so every
-- media-recorder replica sees the same count; after `pin_lockout_failures` within
-- `pin_lockout_window_seconds` the mailbox's phone access is locked until `locked_until`, each
-- lock twice as long as the one before (`lockouts`). A correct PIN, a web login, a new PIN or
-- an administrator's unlock deletes the row. Rules: sipum.accounts.pin_lockout.
CREATE TABLE pin_lockouts (
    user_id           integer PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failures          integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at timestamptz,
    locked_until      timestamptz,
    lockouts          integer NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    last_failure_at   timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The main menu is sip:<user>-retrieve@host: no new user may be called "<name>-retrieve"
-- (NOT VALID: a mailbox created with such a name before keeps it; the registrar-agent still
-- reaches it when there is no "<name>").
ALTER TABLE users ADD CONSTRAINT users_username_not_menu_uri
    CHECK (username !~ '-retrieve$') NOT VALID;
