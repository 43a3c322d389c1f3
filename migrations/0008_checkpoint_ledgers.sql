-- The scoring points of the events a player's history forgot (past the history cap), summed
-- per quarter hour for the window boards: kept apart from the progress row's head, since they
-- grow with the history forgotten, in numbered chunks appended as compactions add to them (see
-- badges.storage). Only a late event reads them.
CREATE TABLE progress_ledgers (
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    player_id    text NOT NULL,
    chunk        integer NOT NULL,
    buckets      bytea NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, player_id, chunk)
);
