-- Idempotent append: at most one entry per dedupe key. KEYS[1]: stream, KEYS[2]: dedupe record (holds the id).
-- ARGV: ttl_ms ('' = keep forever), maxlen ('' = none), then field, value, ... Returns {id, 1 if appended}.
local existing = redis.call('GET', KEYS[2])
if existing then
  return {existing, 0}
end
local args = {KEYS[1]}
if ARGV[2] ~= '' then
  table.insert(args, 'MAXLEN')
  table.insert(args, ARGV[2])
end
table.insert(args, '*')
for i = 3, #ARGV do
  table.insert(args, ARGV[i])
end
local id = redis.call('XADD', unpack(args))
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
else
  redis.call('SET', KEYS[2], id)
end
return {id, 1}
