-- Compare-and-set of several fields of one hash at once, with an announcement.
-- KEYS[1] = hash (e.g. rr:pg:<id>, on the primary)
-- ARGV[1] = n, the number of conditions; ARGV[2 .. 2n+1] = field, expected value pairs ("" = absent)
-- ARGV[2n+2] = channel to publish on ("" = none), ARGV[2n+3] = message
-- ARGV[2n+4 ..] = field, value pairs to set
-- Returns 1 when applied, 0 when a field differs from what is expected (another process moved it).
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local cur = redis.call('HGET', KEYS[1], ARGV[2 + 2 * i])
  if cur == false then cur = '' end
  if cur ~= ARGV[3 + 2 * i] then return 0 end
end
local fields = {}
for i = 2 * n + 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]; fields[#fields + 1] = ARGV[i + 1]
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
if ARGV[2 * n + 2] ~= '' then redis.call('PUBLISH', ARGV[2 * n + 2], ARGV[2 * n + 3]) end
return 1
