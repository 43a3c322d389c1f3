-- Scores on the window boards (daily, weekly), so that every board can be rebuilt from
-- Postgres without refolding engine states.

CREATE TABLE window_scores (
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    board        text NOT NULL CHECK (board IN ('daily', 'weekly')),
    -- The window's first local day (a Monday for weekly), in the campaign's time zone.
    period       date NOT NULL,
    player_id    text NOT NULL,
    -- 0, with no reached_at, once a late event moved every point of it to an earlier window.
    score        bigint NOT NULL CHECK (score >= 0),
    reached_at   timestamptz CHECK ((score = 0) = (reached_at IS NULL)),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_id, board, period, player_id)
);

-- The reconciler replays what changed since its last pass.
CREATE INDEX progress_updated ON progress (updated_at);
CREATE INDEX window_scores_updated ON window_scores (updated_at);
