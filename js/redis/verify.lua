-- verify (spend) and check, for every call a process had pending at once:
-- one script runs them in order, each as if alone. ARGV[2..]: one call each,
-- packed as spend ('1' or '0'), role ('w' Worker, '-' any other), kind
-- ('0', '1', '2': see decide), the fingerprint (64), the digest (64), then
-- the named task ('' or '=' .. id). Replies one entry per call: the uses
-- left (-1: unlimited) .. ':' .. the bound task ('' or '=' .. id), or the
-- refusal.
local out = {}
for i = 2, #ARGV do
  local call = ARGV[i]
  local fp = string.sub(call, 4, 67)
  local role = ''
  if string.sub(call, 2, 2) == 'w' then role = 'worker' end
  local r, e = decide(fp, string.sub(call, 68, 131), role, string.sub(call, 3, 3), string.sub(call, 132))
  if r then
    local left = r[2]
    if string.sub(call, 1, 1) == '1' and left ~= '-1' then
      left = tostring(redis.call('HINCRBY', rkey(fp), 'u', -1))
    end
    out[i - 1] = left .. ':' .. opt(r[4] or nil)
  else
    out[i - 1] = e
  end
end
return out
