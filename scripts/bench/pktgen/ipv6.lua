-- meshgate benchmark profile "ipv6" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
m.setup("ipv6", "fd00::10", "fd00::20", "udp", 1024, 1024 + m.flows - 1, 5678, 5678)
m.measure("ipv6")
pktgen.quit()
