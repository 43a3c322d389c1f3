#!lua name=gamify

-- KEYS[1] is the campaign's ready marker, KEYS[2..n] its boards; ARGV[1] is the player and
-- ARGV[2..n] the player's absolute encoded score on each board. Scores only ever grow (more
-- points, or the same points reached earlier), so ZADD GT makes the step idempotent and lets
-- a rebuild run beside live writes. Returns the ready flag, then the old and new 0-based rank
-- on each board (-1 for not ranked before).
local function set_scores(keys, args)
  local player = args[1]
  local out = {redis.call('EXISTS', keys[1])}
  for i = 2, #keys do
    local old = redis.call('ZREVRANK', keys[i], player)
    redis.call('ZADD', keys[i], 'GT', args[i], player)
    out[#out + 1] = old == false and -1 or old
    out[#out + 1] = redis.call('ZREVRANK', keys[i], player)
  end
  return out
end

redis.register_function('gamify_set_scores', set_scores)
