-- A live consumer's heartbeat: reset the idle time of entries still pending for it, without counting a delivery
-- (XCLAIM ... JUSTID does not raise the delivery count). Entries acked or taken by another consumer are left alone.
-- KEYS[1]: stream. ARGV: group, consumer, then entry ids. Returns how many were touched.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
  if #pending > 0 and pending[1][2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
