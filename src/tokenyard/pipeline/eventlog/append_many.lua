-- Append several entries in order with one command. KEYS[1]: stream.
-- ARGV[1]: a JSON array of entries, each a flat [field, value, ...] array. Returns the new ids in order.
local ids = {}
for i, fields in ipairs(cjson.decode(ARGV[1])) do
  ids[i] = redis.call('XADD', KEYS[1], '*', unpack(fields))
end
return ids
