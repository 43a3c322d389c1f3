"""Live leaderboards in Redis sorted sets, always rebuildable from Postgres.

Layout: one sorted set per board, `lb:{tenant:campaign}:campaign` and
`lb:{tenant:campaign}:weekly:2013-06-03` (the hash tag keeps a campaign's boards in one Redis
Cluster slot), plus `lb:{tenant:campaign}:ready`, present once the boards were built from
Postgres: when it is missing (Redis flushed or restarted empty) they are rebuilt.
"""
