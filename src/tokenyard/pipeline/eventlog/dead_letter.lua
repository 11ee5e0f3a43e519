-- Move one pending entry to the dead-letter stream and ack it. KEYS[1]: stream, KEYS[2]: dead-letter stream.
-- ARGV: group, id, reason, dead fields id/group/deliveries/reason. Returns 0 if the entry was not pending.
local stream, dead, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local pending = redis.call('XPENDING', stream, group, id, id, 1)
if #pending == 0 then
  return 0
end
local entry = redis.call('XRANGE', stream, id, id)
local fields = {}
if #entry > 0 then
  fields = entry[1][2]
end
table.insert(fields, ARGV[4]); table.insert(fields, id)
table.insert(fields, ARGV[5]); table.insert(fields, group)
table.insert(fields, ARGV[6]); table.insert(fields, tostring(pending[1][4]))
table.insert(fields, ARGV[7]); table.insert(fields, ARGV[3])
redis.call('XADD', dead, '*', unpack(fields))
redis.call('XACK', stream, group, id)
return 1
