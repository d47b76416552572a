-- meshgate benchmark profile "new-conn" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
-- every packet a new connection. Range mode steps the source and the
-- destination port together, so the sequence repeats after lcm(sizes)
-- packets: 64,511 source ports (odd) x 256 destination ports are coprime,
-- 16.5 M distinct tuples before a repeat (64,512 x 256 would repeat after
-- 64,512 packets and measure established flows). meshgate's conntrack
-- (scripts/bench/pktgen/run: 4 M connections) fills first: from then on new
-- tuples are dropped with 155 and the delivered ratio says so.
m.setup("ipv4", "10.1.0.10", "10.1.0.20", "udp", 1024, 65534, 5678, 5933)
m.measure("new-conn")
pktgen.quit()
