-- meshgate benchmark profiles for Pktgen-DPDK 23.03-23.06 (DPDK 22.11).
-- Port 0 is the "frontend" VM (10.1.0.10 / fd00::10), port 1 the "myapp" VM
-- (10.1.0.20 / fd00::20), both virtio_user ports on meshgate's vhost-user
-- sockets (scripts/bench/pktgen/run sets that up). Port 0 sends to
-- meshgate's router MAC; what meshgate forwards arrives on port 1.
-- Results go to $MG_PKTGEN_OUT as JSON lines in meshgate's --json format.
package.path = package.path .. ";?.lua;"


local M = {}

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

M.router_mac = env("MG_ROUTER_MAC", "02:aa:00:00:00:01")
M.seconds = tonumber(env("MG_SECONDS", "5"))
M.flows = tonumber(env("MG_FLOWS", "3073"))
M.out = env("MG_PKTGEN_OUT", "pktgen-results.jsonl")

local function emit(name, value, unit)
  local f = io.open(M.out, "a")
  f:write(string.format('{"name": "%s", "value": %.6g, "unit": "%s", "baseline": null, "baseline_value": null}\n',
                        name, value, unit))
  f:close()
end

-- Common single-port setup on port 0 (range mode: the flows vary).
function M.setup(kind, src, dst, proto, sport_lo, sport_hi, dport_lo, dport_hi)
  pktgen.reset("all")
  pktgen.clear("all")
  pktgen.set("0", "rate", 100)
  pktgen.set("0", "size", kind == "ipv6" and 78 or 64)
  pktgen.range.set_type("0", kind == "ipv6" and "ipv6" or "ipv4")
  pktgen.range.dst_mac("0", "start", M.router_mac)
  pktgen.range.src_ip("0", "start", src)
  pktgen.range.src_ip("0", "inc", kind == "ipv6" and "::" or "0.0.0.0")
  pktgen.range.src_ip("0", "min", src)
  pktgen.range.src_ip("0", "max", src)
  pktgen.range.dst_ip("0", "start", dst)
  pktgen.range.dst_ip("0", "inc", kind == "ipv6" and "::" or "0.0.0.0")
  pktgen.range.dst_ip("0", "min", dst)
  pktgen.range.dst_ip("0", "max", dst)
  pktgen.range.ip_proto("0", proto)
  pktgen.range.src_port("0", "start", sport_lo)
  pktgen.range.src_port("0", "inc", sport_hi > sport_lo and 1 or 0)
  pktgen.range.src_port("0", "min", sport_lo)
  pktgen.range.src_port("0", "max", sport_hi)
  pktgen.range.dst_port("0", "start", dport_lo)
  pktgen.range.dst_port("0", "inc", dport_hi > dport_lo and 1 or 0)
  pktgen.range.dst_port("0", "min", dport_lo)
  pktgen.range.dst_port("0", "max", dport_hi)
  pktgen.range.pkt_size("0", "start", kind == "ipv6" and 78 or 64)
  pktgen.range.pkt_size("0", "inc", 0)
  pktgen.range.pkt_size("0", "min", kind == "ipv6" and 78 or 64)
  pktgen.range.pkt_size("0", "max", kind == "ipv6" and 78 or 64)
  pktgen.set_range("0", "on")
end

-- Sends for M.seconds and reports what port 1 received (Mpps) and what
-- port 0 sent.
function M.measure(profile)
  pktgen.clr()
  local before = pktgen.portStats("all", "port")
  local tx0, rx1 = before[0].opackets, before[1].ipackets
  pktgen.start("0")
  pktgen.delay(M.seconds * 1000)
  pktgen.stop("0")
  pktgen.delay(500)
  local after = pktgen.portStats("all", "port")
  local sent = after[0].opackets - tx0
  local got = after[1].ipackets - rx1
  emit("pktgen_sent_mpps_" .. profile, sent / M.seconds / 1e6, "Mpps")
  emit("pktgen_mpps_" .. profile, got / M.seconds / 1e6, "Mpps")
  emit("pktgen_delivered_ratio_" .. profile, sent > 0 and got / sent or 0, "ratio")
end

return M
