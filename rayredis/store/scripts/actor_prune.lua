-- Delete the oldest DEAD actors beyond the number to keep (the GCS, periodically).
-- KEYS[1] = rr:actors:dead (ZSET by death time), KEYS[2] = rr:actors (the index of every actor)
-- An entry is read as 'rr:actor:' .. id, the format of keys.actor_key(), and deleted only if it is
-- still DEAD (DEAD is terminal, so it always is). Single-instance Redis (no cluster mode).
-- ARGV[1] = how many dead actors to keep, ARGV[2] = most to delete in this call
-- Returns how many were deleted.
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
if excess > tonumber(ARGV[2]) then excess = tonumber(ARGV[2]) end
local ids = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
for _, id in ipairs(ids) do
  local k = 'rr:actor:' .. id
  if redis.call('HGET', k, 'state') == 'DEAD' then redis.call('DEL', k) end
  redis.call('SREM', KEYS[2], id)
end
redis.call('ZREM', KEYS[1], unpack(ids))
return #ids
