-- What a campaign's stored scores depend on is fixed when the campaign is written, never
-- recomputed from fields that can change later (ending a campaign moves ends_at).

-- The time bits k of the board encoding (points * 2^k + ...): chosen from the campaign's length
-- while its rules can change, then kept, so that scores already in Redis decode the same after
-- an early end. Existing rows get the bits their length gives (the bit length of the whole
-- seconds of the span, plus one), as gamify computed them until now.
ALTER TABLE campaigns ADD COLUMN score_bits smallint;
UPDATE campaigns SET score_bits = greatest(1, length(ltrim(
    (greatest(1, ceil(extract(epoch FROM closes_at - starts_at))::bigint + 1))::bit(64)::text,
    '0')));
ALTER TABLE campaigns ALTER COLUMN score_bits SET NOT NULL;

-- Awards a backfill credited: a replay of their event answers what its first arrival
-- answered, which never included them.
ALTER TABLE awards ADD COLUMN by_backfill boolean NOT NULL DEFAULT false;

-- A per-(campaign, player) counter, moved by every write of the row under its lock: the order
-- in which window board scores must land in Redis, whatever order the writes arrive in.
ALTER TABLE progress ADD COLUMN version bigint NOT NULL DEFAULT 0;
