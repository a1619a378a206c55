-- Compare-and-set a task's state in the task table.
-- KEYS[1] = rr:task:<id> (data shard of the task id)
-- ARGV[1] = allowed current states, comma separated ("*" = any, including a missing entry)
-- ARGV[2] = attempt this transition belongs to (must be >= the stored attempt)
-- ARGV[3] = seconds until expiry after this write (0 = keep)
-- ARGV[4..] = field, value pairs (state and attempt among them)
-- Returns 1 when applied, 0 when stale (a newer attempt or a state outside the allowed set).
local st = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] ~= '*' then
  if not st then return 0 end
  local ok = false
  for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then ok = true end end
  if not ok then return 0 end
end
local att = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '-1')
if tonumber(ARGV[2]) < att then return 0 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
