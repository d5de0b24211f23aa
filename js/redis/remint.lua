-- remint's write: only when the old record is still as the process read it
-- (else 'RETRY'). ARGV: P, old fp, d, u, x, t (opt) as read, maxRecords,
-- then the new record: fp, digest, json, uses, task (opt), expire_at, key ttl,
-- not_after ('' or the old record's, which the new one keeps). The new
-- record keeps the old one's made too (what the Worker made with it).
local old = rkey(ARGV[2])
local r = redis.call('HMGET', old, 'd', 'u', 'x', 't')
if r[1] ~= ARGV[3] or r[2] ~= ARGV[4] or r[3] ~= ARGV[5] or opt(r[4] or nil) ~= ARGV[6] then
  return {'RETRY'}
end
local refused = limit(redis.call('SCARD', RIDX), ARGV[7], 'maxRecords', false)
if refused then return refused end
redis.call('HSET', old, 'x', '1')
insert(ARGV[8], ARGV[9], ARGV[10], 'worker', ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15])
local made = redis.call('HGET', old, 'm')
if made and made ~= '0' then redis.call('HSET', rkey(ARGV[8]), 'm', made) end
return {'OK'}
