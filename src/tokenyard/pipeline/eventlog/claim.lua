-- Claim idle pending entries, dead-lettering those delivered too often (atomic: two claimers never both win).
-- KEYS[1]: stream, KEYS[2]: dead-letter stream.
-- ARGV: group, consumer, min_idle_ms, count, max_deliveries (0 = no limit), dead fields id/group/deliveries/reason.
local stream, dead = KEYS[1], KEYS[2]
local group, consumer, min_idle, count, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local claimed = {}
local pending = redis.call('XPENDING', stream, group, 'IDLE', min_idle, '-', '+', count)
for _, p in ipairs(pending) do
  local id, deliveries = p[1], tonumber(p[4])
  local entry = redis.call('XRANGE', stream, id, id)
  if #entry == 0 then
    redis.call('XACK', stream, group, id)  -- trimmed away meanwhile: nothing left to deliver
  elseif max > 0 and deliveries >= max then
    local fields = entry[1][2]
    table.insert(fields, ARGV[6]); table.insert(fields, id)
    table.insert(fields, ARGV[7]); table.insert(fields, group)
    table.insert(fields, ARGV[8]); table.insert(fields, tostring(deliveries))
    table.insert(fields, ARGV[9]); table.insert(fields, 'delivered ' .. deliveries .. ' times without ack')
    redis.call('XADD', dead, '*', unpack(fields))
    redis.call('XACK', stream, group, id)
  else
    local got = redis.call('XCLAIM', stream, group, consumer, min_idle, id)
    if #got > 0 then
      table.insert(claimed, {id, got[1][2], deliveries + 1})
    end
  end
end
return claimed
