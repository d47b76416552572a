-- meshgate benchmark profile "established" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
m.setup("ipv4", "10.1.0.10", "10.1.0.20", "udp", 1024, 1024 + m.flows - 1, 5678, 5678)
m.measure("established")
pktgen.quit()
