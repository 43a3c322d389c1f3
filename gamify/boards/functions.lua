#!lua name=gamify

-- KEYS[1] is the campaign's ready marker, KEYS[2..n] its boards. ARGV[1] is the player, then
-- for each board a mode and the player's absolute encoded score:
--   "gt":  the campaign board, whose scores only ever grow (more points, or the same points
--          reached earlier): ZADD GT makes the step idempotent and lets a rebuild run beside
--          live writes;
--   "set": a window board, whose score can drop when a late event moves a badge to an
--          earlier window;
--   "del": off that window board (its score there fell to zero).
-- Returns the ready flag, then the old and new 0-based rank on each board (-1: not ranked).
local function set_scores(keys, args)
  local player = args[1]
  local out = {redis.call('EXISTS', keys[1])}
  for i = 2, #keys do
    local mode, score = args[2 * i - 2], args[2 * i - 1]
    local old = redis.call('ZREVRANK', keys[i], player)
    if mode == 'del' then
      redis.call('ZREM', keys[i], player)
    elseif mode == 'gt' then
      redis.call('ZADD', keys[i], 'GT', score, player)
    else
      redis.call('ZADD', keys[i], score, player)
    end
    local new = redis.call('ZREVRANK', keys[i], player)
    out[#out + 1] = old == false and -1 or old
    out[#out + 1] = new == false and -1 or new
  end
  return out
end

redis.register_function('gamify_set_scores', set_scores)  -- kept for instances of the previous release

-- Many players of one campaign at once: what one committed batch changed. Python's client
-- spends far more per command than Redis does, so a batch is one command, not one per player.
-- KEYS[1] is the campaign's ready marker, KEYS[2..n] the boards named below by index.
-- ARGV[1] is the number of writes and ARGV[2] when window boards expire (Unix seconds); each
-- write is a player, its number of boards, then per board an index into KEYS, a mode and an
-- encoded score (modes as in set_scores). The rest of ARGV are reads: a board index and a
-- player whose rank is wanted as it stands.
-- Returns the ready flag; for each write and board, the old and new 0-based ranks; for each
-- read, the rank (-1: not ranked).
local function set_many(keys, args)
  local out = {redis.call('EXISTS', keys[1])}
  local expire_at = args[2]
  local at = 3
  for _ = 1, tonumber(args[1]) do
    local player, boards = args[at], tonumber(args[at + 1])
    at = at + 2
    for _ = 1, boards do
      local key, mode, score = keys[tonumber(args[at])], args[at + 1], args[at + 2]
      at = at + 3
      local old = redis.call('ZREVRANK', key, player)
      if mode == 'del' then
        redis.call('ZREM', key, player)
      elseif mode == 'gt' then
        redis.call('ZADD', key, 'GT', score, player)
      else
        redis.call('ZADD', key, score, player)
        redis.call('EXPIREAT', key, expire_at)
      end
      local new = redis.call('ZREVRANK', key, player)
      out[#out + 1] = old == false and -1 or old
      out[#out + 1] = new == false and -1 or new
    end
  end
  while at < #args do
    local rank = redis.call('ZREVRANK', keys[tonumber(args[at])], args[at + 1])
    out[#out + 1] = rank == false and -1 or rank
    at = at + 2
  end
  return out
end

redis.register_function('gamify_set_many', set_many)  -- kept for instances of the previous release

-- gamify_set_many with versions: parallel flushes (of one instance or several) may reach
-- Redis in another order than they committed, and a window score is set outright, so an
-- older write landing last would win. Each write carries the version its (campaign, player)
-- row took under its Postgres lock, and each window board of it the index in KEYS of that
-- player's version key for that board: a window write older than the last one applied to
-- that board is skipped (the campaign board needs no version: ZADD GT keeps the newest).
-- Per board, not per player: a write carries only the windows it changed, so an older write
-- may hold the only news of a window the newer one did not touch.
-- ARGV as in set_many, but each write is a player, its version, its number of boards, then
-- per board an index into KEYS, a mode, an encoded score and its version key's index (0 for
-- the campaign board). Version keys live VERSION_SECONDS: writes of one player race within
-- seconds, and the reconciler replays from Postgres.
local VERSION_SECONDS = 600

local function write(keys, args)
  local out = {redis.call('EXISTS', keys[1])}
  local expire_at = args[2]
  local at = 3
  for _ = 1, tonumber(args[1]) do
    local player, version, boards = args[at], tonumber(args[at + 1]), tonumber(args[at + 2])
    at = at + 3
    for _ = 1, boards do
      local key, mode, score = keys[tonumber(args[at])], args[at + 1], args[at + 2]
      local version_at = tonumber(args[at + 3])
      at = at + 4
      local old = redis.call('ZREVRANK', key, player)
      if mode == 'gt' then
        redis.call('ZADD', key, 'GT', score, player)
      else
        local seen = tonumber(redis.call('GET', keys[version_at]) or '-1')
        if version > seen then
          redis.call('SET', keys[version_at], version, 'EX', VERSION_SECONDS)
          if mode == 'del' then
            redis.call('ZREM', key, player)
          else
            redis.call('ZADD', key, score, player)
            redis.call('EXPIREAT', key, expire_at)
          end
        end
      end
      local new = redis.call('ZREVRANK', key, player)
      out[#out + 1] = old == false and -1 or old
      out[#out + 1] = new == false and -1 or new
    end
  end
  while at < #args do
    local rank = redis.call('ZREVRANK', keys[tonumber(args[at])], args[at + 1])
    out[#out + 1] = rank == false and -1 or rank
    at = at + 2
  end
  return out
end

redis.register_function('gamify_write', write)

-- KEYS[1] is a board, KEYS[2] its campaign's ready marker; ARGV[1] a player and ARGV[2] how
-- many neighbours on each side. Returns {-1} when the boards are not built, nothing when the
-- player is not on the board, else {0-based rank, score, board size, first rank shown,
-- member, score, member, score, ...}: around-me in one round trip.
local function around(keys, args)
  if redis.call('EXISTS', keys[2]) == 0 then
    return {-1}
  end
  local rank = redis.call('ZREVRANK', keys[1], args[1])
  if rank == false then
    return {}
  end
  local radius = tonumber(args[2])
  local first = math.max(0, rank - radius)
  local out = {rank, redis.call('ZSCORE', keys[1], args[1]), redis.call('ZCARD', keys[1]), first}
  local shown = redis.call('ZREVRANGE', keys[1], first, rank + radius, 'WITHSCORES')
  for i = 1, #shown do
    out[#out + 1] = shown[i]
  end
  return out
end

redis.register_function{function_name = 'gamify_around', callback = around,
                        flags = {'no-writes'}}

-- Whether member a sorts before member b as Redis orders them (memcmp of the bytes): Lua's
-- own string comparison follows the server's collation locale.
local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- KEYS[1] is a board, KEYS[2] its campaign's ready marker; ARGV[1] a page size, then
-- optionally the cursor: ARGV[2] an encoded score and ARGV[3] a member, the last entry of
-- the previous page. Returns {-1} when the boards are not built, else {board size, 0-based
-- rank of the first entry, member, score, ...}: the entries after the cursor in board order
-- (score descending, then member descending), read in one atomic step, exact for any number
-- of equal scores: among the members sharing the cursor's score (a contiguous run), a binary
-- search finds the first that sorts below the cursor's member.
local function page(keys, args)
  if redis.call('EXISTS', keys[2]) == 0 then
    return {-1}
  end
  local limit = tonumber(args[1])
  local start = 0
  if args[2] ~= nil then
    local score, member = args[2], args[3]
    local lo = redis.call('ZCOUNT', keys[1], '(' .. score, '+inf')
    local hi = lo + redis.call('ZCOUNT', keys[1], score, score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local at = redis.call('ZREVRANGE', keys[1], mid, mid)[1]
      if bytes_less(at, member) then
        hi = mid
      else
        lo = mid + 1
      end
    end
    start = lo
  end
  local out = {redis.call('ZCARD', keys[1]), start}
  local shown = redis.call('ZREVRANGE', keys[1], start, start + limit - 1, 'WITHSCORES')
  for i = 1, #shown do
    out[#out + 1] = shown[i]
  end
  return out
end

redis.register_function{function_name = 'gamify_page', callback = page, flags = {'no-writes'}}

-- KEYS[1] is a campaign's rebuild lock, KEYS[2] its ready marker; ARGV[1] the token the
-- rebuild took the lock with. Sets the marker only if the lock is still that rebuild's: a
-- Redis flushed or restarted mid-rebuild lost the rows written before, and must not be
-- marked complete. Releases the lock either way; returns 1 when the marker was set.
local function finish_rebuild(keys, args)
  if redis.call('GET', keys[1]) ~= args[1] then
    return 0
  end
  redis.call('SET', keys[2], '1')
  redis.call('DEL', keys[1])
  return 1
end

redis.register_function('gamify_finish_rebuild', finish_rebuild)
