-- Due credits per campaign, oldest first: claims take each campaign's in turn, so a settled pool
-- of a million credits does not hold back another campaign's badge rewards for the hour it
-- takes to deliver (see payouts.store.CLAIM_DUE). It replaces the index over all campaigns at
-- once, which the planner would otherwise walk, filtering, for a campaign with few credits due.
CREATE INDEX payouts_due_by_campaign ON payouts (tenant_id, campaign_id, next_attempt_at)
    WHERE status = 'pending';
DROP INDEX payouts_due;
