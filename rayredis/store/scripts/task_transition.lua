-- Compare-and-set a task's state in the task table.
-- KEYS[1] = rr:task:<id> (data shard of the task id)
-- ARGV[1] = allowed current states, comma separated ("*" = any, including a missing entry; "NONE" in
--           the list = an entry without a state, or none: a node running a forwarded task may
--           report before the owner's own PENDING write lands, which then must not move it back;
--           "OLDER" = any state of an earlier attempt than ARGV[2])
-- ARGV[2] = attempt this transition belongs to (must be >= the stored attempt)
-- ARGV[3] = seconds until expiry after this write (0 = keep)
-- ARGV[4..] = field, value pairs (state and attempt among them)
-- Returns 1 when applied, 0 when stale (a newer attempt or a state outside the allowed set).
local st = redis.call('HGET', KEYS[1], 'state')
local att = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '-1')
if ARGV[1] ~= '*' then
  local ok = false
  for s in string.gmatch(ARGV[1], '[^,]+') do
    if (st and s == st) or (not st and s == 'NONE') or (s == 'OLDER' and tonumber(ARGV[2]) > att) then ok = true end
  end
  if not ok then return 0 end
end
if tonumber(ARGV[2]) < att then return 0 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
