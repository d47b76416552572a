-- meshgate benchmark profile "deny" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
-- the run script applies a policy that denies frontend -> myapp: nothing
-- arrives on port 1; meshgate's own counters say what it processed
m.setup("ipv4", "10.1.0.10", "10.1.0.20", "udp", 1024, 1024 + m.flows - 1, 5678, 5678)
m.measure("deny")
pktgen.quit()
