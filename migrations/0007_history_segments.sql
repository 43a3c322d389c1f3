-- A player's retained history, sealed in immutable segments apart from the progress row (see
-- badges.storage): an in-order event rewrites only the row's small head (accumulators, awards,
-- the newest facts), not every fact the player ever sent. Each segment is keyed by its newest
-- fact; they split the history in (occurred_at, id) order.
CREATE TABLE progress_segments (
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    player_id    text NOT NULL,
    newest_t     bigint NOT NULL,  -- microseconds since the epoch
    newest_id    text NOT NULL,
    count        integer NOT NULL CHECK (count > 0),
    facts        bytea NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, player_id, newest_t, newest_id)
);

-- Per window board, the newest period the player scored in, with its total: an in-order event
-- adds to it without reading the history (MessagePack, written with the head).
ALTER TABLE progress ADD COLUMN windows bytea;
