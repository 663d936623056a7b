-- 0017: MWI subscriptions (RFC 3842 over RFC 6665) survive a registrar-agent restart or a
-- shard takeover. Each row is one subscription dialog as the notifier (the agent, the UAS of
-- the SUBSCRIBE) sees it — what an in-dialog NOTIFY needs (RFC 3261 §12.2.1.1): Call-ID, both
-- tags, local/remote URI, remote target, route set, our last CSeq — plus the subscribed
-- mailbox, the Event id and when it runs out. Stored on the 200 to a SUBSCRIBE, updated on a
-- refresh and after every NOTIFY (local_seq), deleted on unsubscribe, expiry or a NOTIFY the
-- phone refuses (481/408/no answer). Rules: sipum_registrar_agent.mwi, docs/registrar-agent.md.
CREATE TABLE mwi_subscriptions (
    call_id        text NOT NULL,
    local_tag      text NOT NULL,
    remote_tag     text NOT NULL,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id       text,
    local_uri      text NOT NULL,
    remote_uri     text NOT NULL,
    remote_target  text NOT NULL,
    route_set      text[] NOT NULL DEFAULT '{}',
    local_seq      bigint CHECK (local_seq >= 0),
    remote_seq     bigint CHECK (remote_seq >= 0),
    peer_transport text NOT NULL,
    peer_host      text NOT NULL,
    peer_port      integer NOT NULL CHECK (peer_port BETWEEN 1 AND 65535),
    expires_at     timestamptz NOT NULL,
    agent_id       text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, local_tag, remote_tag)
);
CREATE INDEX mwi_subscriptions_expires_at ON mwi_subscriptions (expires_at);
CREATE INDEX mwi_subscriptions_user_id ON mwi_subscriptions (user_id);
