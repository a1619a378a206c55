-- Remove one node's copy from an object's entry; delete the entry when no copy is left.
-- KEYS[1] = rr:obj:<id> (on the object's data shard)
-- ARGV[1] = the location field of the node whose copy is gone ("loc:<node-id hex>")
-- Returns the number of locations left (0 means the entry was deleted). Idempotent: removing an
-- absent location changes nothing, so a flush retried after a shard restart is harmless.
redis.call('HDEL', KEYS[1], ARGV[1])
local left = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 4) == 'loc:' then left = left + 1 end
end
if left == 0 then redis.call('DEL', KEYS[1]) end
return left
