-- A campaign that must still fold the events stored before it could count them (created with,
-- or moved before its first event to, a starts_at in the past). Kept in the database so that a
-- backfill cut short by a restart or an error is resumed, by any instance, where it stopped.
ALTER TABLE campaigns
    ADD COLUMN backfill_pending boolean NOT NULL DEFAULT false,
    -- Players are folded in id order, a chunk per transaction; the last player folded.
    ADD COLUMN backfill_after text;

CREATE INDEX campaigns_backfill ON campaigns (tenant_id, id) WHERE backfill_pending;
