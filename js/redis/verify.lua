-- verify (spend '1') and check (spend '0').
-- ARGV: P, fp, digest, role, kind, targ, spend
local fp = ARGV[2]
local r, e = decide(fp, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if not r then return e end
local left = r[2]
if ARGV[7] == '1' and left ~= '-1' then
  left = tostring(redis.call('HINCRBY', rkey(fp), 'u', -1))
end
return {'OK', left, opt(r[4] or nil)}
