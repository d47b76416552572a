-- meshgate benchmark profile "service" (see common.lua).
package.path = package.path .. ";" .. (os.getenv("MG_PKTGEN_DIR") or ".") .. "/?.lua"
local m = require "common"
-- to the service frontend 10.96.0.80:80 (UDP), DNAT to myapp:5678
m.setup("ipv4", "10.1.0.10", "10.96.0.80", "udp", 1024, 1024 + m.flows - 1, 80, 80)
m.measure("service")
pktgen.quit()
