-- Campaigns on the clock: after `closes_at` (ends_at + grace) a campaign settles by itself,
-- once, whichever instance gets to it first (a row lock), and its prize pool is split then.

-- settling_since: an instance began settling (shown as `settling`); settled_at: the allocation
-- is frozen (payouts rows written) and the campaign is `settled`.
ALTER TABLE campaigns
    ADD COLUMN settling_since timestamptz,
    ADD COLUMN settled_at timestamptz,
    -- What settlement found: players eligible for the pool, and the pool's units allocated.
    ADD COLUMN pool_eligible integer,
    ADD COLUMN pool_allocated bigint;

-- What the clock asks every second on every instance: campaigns due to settle.
CREATE INDEX campaigns_due ON campaigns (closes_at)
    WHERE settled_at IS NULL AND cancelled_at IS NULL;

-- Credits owed to players in the loyalty system: the frozen allocation of a pool (reason
-- 'pool', with the rank, score and badges it used) and, later, badge rewards. `id` is the
-- credit's identity toward the loyalty system (`webhook-id`), stable across retries and
-- restarts; status moves pending -> delivered | failed.
CREATE TABLE payouts (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL,
    campaign_id     text NOT NULL,
    player_id       text NOT NULL,
    reason          text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    unit            text NOT NULL,
    rank            integer,
    score           bigint,
    badges          integer,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    -- Moved by every retry of a failed credit: what an attempt of an earlier round reports
    -- afterwards (a late 410) must not fail the retried credit again.
    round           integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- No foreign key to campaigns: a settlement writes a row per player, and a check per row
    -- (with its row lock on the campaign) would cost more than the insert.
    UNIQUE (tenant_id, campaign_id, player_id, reason)
);
-- What a dispatcher claims: pending credits whose next attempt is due.
CREATE INDEX payouts_due ON payouts (next_attempt_at) WHERE status = 'pending';

-- Every delivery attempt: when, the HTTP status (none for a timeout or a refused connection),
-- the error and the start of the answer.
CREATE TABLE payout_attempts (
    payout_id   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    error       text,
    excerpt     text
);
CREATE INDEX payout_attempts_payout ON payout_attempts (payout_id, at);
