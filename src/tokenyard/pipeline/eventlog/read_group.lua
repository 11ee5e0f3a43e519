-- A non-blocking consumer-group read whose reply is one JSON string (decoded in C by the caller) instead of a
-- nested multi-bulk reply that the client would parse element by element. KEYS[1]: stream.
-- ARGV: group, consumer, count. Returns '' when nothing is new, else [[id, [field, value, ...]], ...].
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then
  return ''
end
return cjson.encode(reply[1][2])
