-- meshgate benchmark profile "new-conn" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
-- every packet a new connection: 64,512 source ports x 256 destination ports
m.setup("ipv4", "10.1.0.10", "10.1.0.20", "udp", 1024, 65535, 5678, 5933)
m.measure("new-conn")
pktgen.quit()
