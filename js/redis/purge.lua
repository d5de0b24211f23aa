-- purgeExpired over one batch of fingerprints. ARGV: P, now, fp...
-- Records already gone by key expiry leave the index too. Returns how many.
local now, n = tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local fp = ARGV[i]
  local r = redis.call('HMGET', rkey(fp), 'o', 'e', 't')
  if not r[1] then
    n = n + redis.call('SREM', RIDX, fp)
  elseif r[1] ~= 'operator' and now >= tonumber(r[2]) then
    redis.call('DEL', rkey(fp))
    if r[3] then redis.call('SREM', P .. 'b:' .. r[3], fp) end
    n = n + redis.call('SREM', RIDX, fp)
  end
end
return n
