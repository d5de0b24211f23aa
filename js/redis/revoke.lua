-- revoke (ARGV[2] = fp, one) or revokeTask (ARGV[2] = '', ARGV[3] = task id:
-- every token bound to it or to a task below it). Returns how many.
local function revoke(fp)
  if redis.call('HGET', rkey(fp), 'x') == '0' then
    redis.call('HSET', rkey(fp), 'x', '1')
    return 1
  end
  return 0
end
if ARGV[2] ~= '' then return revoke(ARGV[2]) end
local queue, seen, at, count = {ARGV[3]}, {[ARGV[3]] = true}, 1, 0
while queue[at] do
  local task = queue[at]
  at = at + 1
  for _, fp in ipairs(redis.call('SMEMBERS', P .. 'b:' .. task)) do count = count + revoke(fp) end
  for _, child in ipairs(redis.call('SMEMBERS', P .. 'k:' .. task)) do
    if not seen[child] then
      seen[child] = true
      queue[#queue + 1] = child
    end
  end
end
return count
