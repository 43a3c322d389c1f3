-- Campaigns, players, the events they send, and what the engine made of them.
--
-- The write path's tables (events, progress, awards, outbox) carry no foreign keys: each check
-- would lock the referenced player or campaign row (FOR KEY SHARE) once per event, which costs
-- more than the rest of the insert. The one transaction that writes them also writes their
-- players, and campaigns and players are never deleted.

CREATE TABLE campaigns (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    id          text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    timezone    text NOT NULL,
    grace       interval NOT NULL DEFAULT '0',
    -- ends_at + grace: after it no event changes the campaign any more.
    closes_at   timestamptz NOT NULL,
    -- The campaign as accepted: badges, scoring, leaderboards, prize pool, loyalty endpoint.
    document    jsonb NOT NULL,
    -- Bumped on every change, so that instances know when to recompile the rules.
    version     integer NOT NULL DEFAULT 1,
    cancelled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Which campaigns can still take an event: the write path asks this on every request.
CREATE INDEX campaigns_open ON campaigns (tenant_id, closes_at) WHERE cancelled_at IS NULL;

CREATE TABLE players (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    id           text NOT NULL CHECK (length(id) BETWEEN 1 AND 128),
    display_name text CHECK (length(display_name) <= 200),
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE events (
    tenant_id    text NOT NULL,
    -- The partner's id: the idempotency key of the event, per tenant.
    id           text NOT NULL CHECK (length(id) BETWEEN 1 AND 200),
    player_id    text NOT NULL,
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    attributes   jsonb NOT NULL,
    -- SHA-256 of the canonical payload: a replay with another payload is refused, not merged.
    payload_hash bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_player ON events (tenant_id, player_id, occurred_at);

-- The engine's state per player and campaign; score and reached_at are its summary.
CREATE TABLE progress (
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    player_id    text NOT NULL,
    state        bytea NOT NULL,
    score        bigint NOT NULL DEFAULT 0 CHECK (score >= 0),
    reached_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id, player_id)
);
CREATE INDEX progress_player ON progress (tenant_id, player_id);

-- A badge is held at most once per player and campaign: the constraint, not the code, says so.
CREATE TABLE awards (
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    player_id    text NOT NULL,
    badge_id     text NOT NULL,
    awarded_at   timestamptz NOT NULL,
    -- awarded_at as first granted (a late event can move awarded_at earlier): what a replay
    -- of the granting event answers, so that it repeats the original answer exactly.
    first_awarded_at timestamptz NOT NULL,
    points       integer NOT NULL,
    -- The event whose arrival granted the badge: a replay of it answers this award again.
    event_id     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id, player_id, badge_id)
);
CREATE INDEX awards_event ON awards (tenant_id, event_id);

-- Awards to deliver (live messages, loyalty credits), written in the transaction that made them.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL,
    kind         text NOT NULL,
    campaign_id  text,
    player_id    text,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE processed_at IS NULL;
