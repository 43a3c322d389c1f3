#!lua name=gamify_live

-- Each player's messages live in a stream whose entry ids are `<seq>-0`, beside a counter of
-- the last seq given (KEYS[1] the stream, KEYS[2] the counter; both carry the player's hash
-- tag). A counter that is missing (a new player, an idle one whose keys expired, or a Redis
-- that lost them) restarts at the server's clock in microseconds: a later epoch starts above
-- every seq an earlier one gave (unless that stream took more messages than microseconds
-- passed), so a client resuming from an old epoch finds that the stream does not hold the
-- message after its own, and is told `recovered: false`. Seqs stay below 2^53 (exact in
-- JSON numbers) until the 23rd century.
local KEEP_MS = 86400000
local TRIM_LOOKS = 16
local TRIM_EVERY = 8

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Entries older than KEEP_MS go from the head, a few per call: a stream that grows is trimmed
-- at least as fast as it grows, and no call pays for a whole stream.
local function trim(stream, now)
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', TRIM_LOOKS)
  local keep = nil
  for _, entry in ipairs(head) do
    local fields = entry[2]
    if tonumber(fields[2]) >= now - KEEP_MS then
      keep = entry[1]
      break
    end
  end
  if keep then
    redis.call('XTRIM', stream, 'MINID', keep)
  elseif #head > 0 then
    local ids = {}
    for _, entry in ipairs(head) do
      ids[#ids + 1] = entry[1]
    end
    redis.call('XDEL', stream, unpack(ids))
  end
end

-- ARGV[1] the player's shard channel, ARGV[2] the longest stream kept, ARGV[3..] messages as
-- JSON objects without their seq. Each is given the next seq, appended, and all of them are
-- published in one message: "<first seq>\n<frame>\n<frame>...". Appending and publishing in
-- one call keeps the channel's order the stream's order. Returns the first seq given.
local function push(keys, args)
  if #args < 3 then
    return nil
  end
  local epoch = now_us()
  local now = math.floor(epoch / 1000)
  if redis.call('EXISTS', keys[2]) == 0 then
    redis.call('SET', keys[2], string.format('%.0f', epoch))
  end
  local frames = {}
  local first = nil
  local last = nil
  for i = 3, #args do
    local seq = string.format('%.0f', redis.call('INCR', keys[2]))
    first = first or seq
    last = seq
    local frame = '{"seq":' .. seq .. ',' .. string.sub(args[i], 2)
    redis.call('XADD', keys[1], 'MAXLEN', '~', args[2], seq .. '-0', 't', now, 'm', frame)
    frames[#frames + 1] = frame
  end
  -- Looking at the head every TRIM_EVERY seqs keeps a push cheap; MAXLEN bounds it meanwhile.
  if math.floor(tonumber(last) / TRIM_EVERY) ~= math.floor((tonumber(first) - 1) / TRIM_EVERY) then
    trim(keys[1], now)
  end
  redis.call('PEXPIRE', keys[1], KEEP_MS)
  redis.call('PEXPIRE', keys[2], KEEP_MS)
  redis.call('SPUBLISH', args[1], first .. '\n' .. table.concat(frames, '\n'))
  return first
end

redis.register_function('gamify_live_push', push)

-- KEYS as for push; ARGV[1] the first seq wanted, ARGV[2] how many at most. Returns the last
-- seq given (-1: no counter), then the frames held from that seq on, with their seqs:
-- {last, seq, frame, seq, frame, ...}.
local function replay(keys, args)
  local last = redis.call('GET', keys[2]) or '-1'
  local out = {last}
  local entries = redis.call('XRANGE', keys[1], args[1] .. '-0', '+', 'COUNT', args[2])
  for _, entry in ipairs(entries) do
    local id = entry[1]
    out[#out + 1] = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
    out[#out + 1] = entry[2][4]
  end
  return out
end

redis.register_function{function_name = 'gamify_live_replay', callback = replay,
  flags = {'no-writes'}}
