-- Read records (ARGV[2] = 'r') or tasks (ARGV[2] = 't'), ARGV[3...] = keys.
-- A record: fp, json, uses, revoked, task (opt), not_after (opt), made; a task:
-- id, parent (opt), depth.
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if ARGV[2] == 'r' then
    local r = redis.call('HMGET', rkey(id), 'j', 'u', 'x', 't', 'a', 'm')
    if r[1] then
      out[#out + 1] = id; out[#out + 1] = r[1]; out[#out + 1] = r[2]
      out[#out + 1] = r[3]; out[#out + 1] = opt(r[4] or nil); out[#out + 1] = opt(r[5] or nil)
      out[#out + 1] = r[6] or '0'
    end
  else
    local t = redis.call('HMGET', tkey(id), 'p', 'd')
    if t[2] then
      out[#out + 1] = id; out[#out + 1] = opt(t[1] or nil); out[#out + 1] = t[2]
    end
  end
end
return out
