#!/bin/bash
# End-to-end: `meshgate run` on real devices (two pods in network namespaces
# on veth + net_af_packet), fed by `meshgate mesh`, driven by meshgatectl:
# config errors, socket mode and "in use", apply/get/observe/explain/stats/
# status, Prometheus metrics over HTTP, DPDK telemetry, hostile feed frames
# (refused, daemon alive, state untouched), a feed cut mid-frame, a resync
# after the controller restarts with a changed mesh, clean stop on SIGTERM.
# Usage: daemon_test.sh MESHGATE MESHGATECTL   (as root)
set -u
mg=$1
ctl=$2
source "$(dirname "$0")/../lib/check.sh"
id=$(printf '%05d' $(($$ % 100000)))
run=$(mktemp -d /tmp/meshgate-daemon-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for n in fe app; do ip netns pids "mgd-$id-$n" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "mgd-$id-$n" 2>/dev/null; done
  rm -rf "$run"
}
trap cleanup EXIT

# 1. Config errors name the line.
printf 'cluster: {name: c1, id: 1}\nports:\n  - {device: net_null0, role: sideways}\n' > "$run/bad.yaml"
out=$("$mg" run --config "$run/bad.yaml" 2>&1); rc=$?
check "bad role rc=$rc" [ $rc -eq 2 ]
check "bad role line: $out" grep -q "bad.yaml:3: ports\[0\].role" <<<"$out"
printf 'cluster: {name: c1, id: 1}\nportz: []\n' > "$run/bad2.yaml"
out=$("$mg" run --config "$run/bad2.yaml" 2>&1)
check "unknown key: $out" grep -q 'bad2.yaml:2: config: unknown key "portz"' <<<"$out"
printf 'cluster: {name: c1, id: 1}\nports: [{device: net_null0}]\nsockets:\n  tcp: {enabled: true, address: 0.0.0.0}\n' > "$run/bad3.yaml"
out=$("$mg" run --config "$run/bad3.yaml" 2>&1)
check "feed TCP on loopback only: $out" grep -q 'bad3.yaml:4: sockets.tcp.address: "0.0.0.0" is not a loopback address' <<<"$out"
printf 'cluster: {name: c1, id: 1}\nlcores: [1, "x@1"]\nports: [{device: net_null0}]\n' > "$run/bad4.yaml"
out=$("$mg" run --config "$run/bad4.yaml" --check 2>&1)
check "lcore@cpu syntax: $out" grep -q 'bad4.yaml:2: lcores\[\]: expected an lcore id (1-127) or LCORE@CPU' <<<"$out"
out=$("$mg" run --config "$run/none.yaml" 2>&1); rc=$?
check "missing config rc=$rc" [ $rc -eq 2 ]

# 2. Two pods on veth + net_af_packet.
for n in fe app; do
  ip netns add "mgd-$id-$n"
  ip link add "d${id}$n" type veth peer name eth0 netns "mgd-$id-$n"
  ip link set "d${id}$n" up
done
ip -n "mgd-$id-fe" link set eth0 address 02:00:01:00:00:00
ip -n "mgd-$id-app" link set eth0 address 02:00:01:00:00:01
ip -n "mgd-$id-fe" addr add 10.1.0.10/32 dev eth0
ip -n "mgd-$id-app" addr add 10.1.0.20/32 dev eth0
for n in fe app; do
  ip -n "mgd-$id-$n" link set lo up
  ip -n "mgd-$id-$n" link set eth0 up
  ip -n "mgd-$id-$n" route add 169.254.1.1 dev eth0
  ip -n "mgd-$id-$n" route add default via 169.254.1.1 dev eth0
  ip netns exec "mgd-$id-$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "mgd-$id-$n" ethtool -K eth0 tx off >/dev/null
done
mport=$((20000 + $$ % 20000))
cat > "$run/c1.yaml" <<Y
cluster: {name: cluster1, id: 1}
lcores: [1]
idleSleepUs: 200
ports:
  - {device: "net_af_packet0,iface=d${id}fe", role: endpoint}
  - {device: "net_af_packet1,iface=d${id}app", role: endpoint}
  - {device: "net_null0,no-rx=1", role: endpoint}   # never receives
endpoints:   # put in place by the daemon itself, kept through resyncs
  - {name: db, labels: {app: db}, ipv4: 10.1.0.40, port: 2, mac: "02:00:01:00:00:02"}
sockets: {feed: $run/feed.sock, admin: $run/admin.sock, tcp: {enabled: true, port: $((mport + 1))}}
metrics: 127.0.0.1:$mport
maxFrameBytes: 65536
capture: true
Y
"$mg" run --config "$run/c1.yaml" > "$run/c1.log" 2>&1 &
dpid=$!
pids+=($dpid)
for i in $(seq 1 100); do [ -S "$run/admin.sock" ] && break; sleep 0.1; done
check "socket mode 0600" [ "$(stat -c %a "$run/feed.sock")" = 600 ]
out=$("$mg" run --config "$run/c1.yaml" 2>&1); rc=$?
check "second daemon refused rc=$rc" [ $rc -eq 1 ]
check "socket in use: $(tail -1 <<<"$out")" grep -q "socket in use" <<<"$out"
check "not synced before the feed" grep -q "feed synced *no" <<<"$("$ctl" -s "$run/admin.sock" status)"

cat > "$run/mesh.yaml" <<Y
name: t
admin: $run/mesh.sock
clusters: [{name: cluster1, id: 1, feed: $run/feed.sock}]
endpoints:
  - {name: frontend, cluster: cluster1, labels: {app: frontend}, ipv4: 10.1.0.10, port: 0, mac: "02:00:01:00:00:00"}
  - {name: myapp, cluster: cluster1, labels: {app: myapp}, ipv4: 10.1.0.20, port: 1, mac: "02:00:01:00:00:01"}
  - {name: other, cluster: cluster1, labels: {app: other}, ipv4: 10.1.0.30, port: 3, mac: "02:00:01:00:00:03"}
Y
# port 3 does not exist: the daemon refuses that endpoint and disconnects;
# fix the mesh and start again.
"$mg" mesh --config "$run/mesh.yaml" > "$run/mesh.log" 2>&1 &
mpid=$!
sleep 1
check "refused endpoint logged" grep -q "port 3 is not an endpoint port" "$run/c1.log"
check "config endpoint logged" grep -q "endpoint default/db from the config: identity 131071, port 2" "$run/c1.log"
kill $mpid; wait $mpid 2>/dev/null
sed -i '/name: other/d' "$run/mesh.yaml"
"$mg" mesh --config "$run/mesh.yaml" > "$run/mesh.log" 2>&1 &
mpid=$!
pids+=($mpid)
for i in $(seq 1 100); do "$ctl" -s "$run/admin.sock" status | grep -q "feed synced *yes" && break; sleep 0.1; done
check "synced" grep -q "feed synced *yes" <<<"$("$ctl" -s "$run/admin.sock" status)"
eps=$("$ctl" -s "$run/admin.sock" get endpoints -o json)
check "get endpoints json: $eps" grep -q '"ENDPOINT":"default/myapp"' <<<"$eps"
check "get identities" grep -q "k8s:app=frontend" <<<"$("$ctl" -s "$run/admin.sock" get identities)"
check "get ipcache yaml" grep -q 'PREFIX: "10.1.0.20/32"' <<<"$("$ctl" -s "$run/admin.sock" get ipcache -o yaml)"
check "unknown get" [ "$("$ctl" -s "$run/admin.sock" get nothing >/dev/null 2>&1; echo $?)" -eq 1 ]

# 3. Traffic, policy, observe, explain, stats, metrics.
echo "hello from myapp" > "$run/index.html"
ip netns exec "mgd-$id-app" python3 -m http.server 80 --directory "$run" > /dev/null 2>&1 &
pids+=($!)
for i in $(seq 1 50); do ip netns exec "mgd-$id-app" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && break; sleep 0.1; done
out=$(ip netns exec "mgd-$id-fe" curl -s -m 3 http://10.1.0.20/index.html)
check "curl through the daemon: $out" [ "$out" = "hello from myapp" ]
cat > "$run/pol.yaml" <<'Y'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: only-test}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: test}}]}]
Y
check "apply" "$ctl" -s "$run/admin.sock" apply -f "$run/pol.yaml"
check "get policies" grep -q "only-test" <<<"$("$ctl" -s "$run/admin.sock" get policies)"
out=$(ip netns exec "mgd-$id-fe" curl -s --connect-timeout 1 -m 2 http://10.1.0.20/index.html)
check "denied after apply: $out" [ -z "$out" ]
obs=$("$ctl" -s "$run/admin.sock" observe --verdict DROPPED --from-label app=frontend --last 1 -o json)
check "observe json: $obs" grep -q '"drop_reason":133.*"destination_port":80' <<<"$obs"
check "observe compact" grep -q "DROPPED (POLICY_DENIED)" <<<"$("$ctl" -s "$run/admin.sock" observe --to-ip 10.1.0.20 --port 80 --last 2)"
check "observe filter excludes" [ -z "$("$ctl" -s "$run/admin.sock" observe --verdict DROPPED --from-label app=nobody)" ]
# observe --follow while traffic flows
"$ctl" -s "$run/admin.sock" observe --follow --verdict FORWARDED --protocol ICMP > "$run/follow.out" 2>&1 &
fpid=$!
sleep 0.3
ip netns exec "mgd-$id-app" ping -c 2 -i 0.2 -W 1 10.1.0.10 > /dev/null
sleep 0.5
kill $fpid; wait $fpid 2>/dev/null
check "observe --follow saw the pings: $(head -2 "$run/follow.out")" grep -q "10.1.0.20 (default/app=myapp.*-> 10.1.0.10" "$run/follow.out"
ex=$("$ctl" -s "$run/admin.sock" explain --subject default/myapp --peer-ip 10.1.0.10 --port 80)
check "explain: $ex" grep -q "verdict: DROPPED (133" <<<"$ex"
st=$("$ctl" -s "$run/admin.sock" stats)
check "stats drops" grep -q "POLICY_DENIED *133" <<<"$st"
sj=$("$ctl" -s "$run/admin.sock" stats -o json)
check "stats: per-lcore verdict-cache hits" grep -Eq '"ACL CACHE HITS":"[0-9]+"' <<<"$sj"
check "stats: net_af_packet offers no checksum offload" grep -q '"CHECKSUM OFFLOAD":"none"' <<<"$sj"
check "stats: busy cycles per packet of the worker that forwarded the pings" \
  grep -Eq '"BUSY CYCLES/PACKET":"[0-9]+\.[0-9]"' <<<"$sj"
m=$(curl -s "http://127.0.0.1:$mport/metrics")
check "metrics drops" grep -Eq 'meshgate_drops_total\{reason="POLICY_DENIED",code="133",port="0"\} [1-9]' <<<"$m"
check "metrics histogram" grep -q 'meshgate_snapshot_publish_ms_count [1-9]' <<<"$m"
check "metrics gauges" grep -q "^meshgate_endpoints 3$" <<<"$m"
check "metrics busy cycles" grep -Eq '^meshgate_busy_cycles_total\{lcore="1"\} [1-9]' <<<"$m"
check "metrics: each family's samples under its own TYPE" python3 -c '
import sys
fam = None
for line in sys.stdin.read().splitlines():
    if line.startswith("# TYPE "):
        fam = line.split()[2]
    elif line and not line.startswith("#"):
        name = line.split("{")[0].split()[0]
        ok = name == fam or (name.startswith(fam + "_") and name[len(fam) + 1:] in ("bucket", "sum", "count"))
        if not ok:
            sys.exit("sample %s after TYPE %s" % (name, fam))' <<<"$m"
check "metrics: live connections tracked, none collected yet" \
  bash -c 'grep -Eq "^meshgate_tracked_connections [1-9]" <<<"$1" && grep -q "^meshgate_collected_total{table=\"conntrack\"} 0$" <<<"$1"' _ "$m"
prefix=$(ls /var/run/dpdk | grep "^meshgate-cluster1-$dpid$")
tel=$(echo /meshgate/status | timeout 10 dpdk-telemetry.py -f "$prefix" 2>/dev/null | tail -1)
check "telemetry: $tel" grep -q '"/meshgate/status": {"status": "cluster1 ' <<<"$tel"
# A Service applied to the daemon directly: its local backends are the
# endpoints its selector matches (here the config endpoint db).
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: 10.96.0.54\n  selector: {app: db}\n  ports: [{port: 5432}]\n' > "$run/svc.yaml"
check "apply a Service" "$ctl" -s "$run/admin.sock" apply -f "$run/svc.yaml"
check "its backends from local endpoints" grep -q "10.96.0.54:5432 *TCP *10.1.0.40:5432" <<<"$("$ctl" -s "$run/admin.sock" get services)"
check "delete the Service" "$ctl" -s "$run/admin.sock" delete Service db
# Packet capture through rte_pdump: dpdk-dumpcap attaches as a secondary.
check "capture announced" grep -q "packet capture on: dpdk-dumpcap --file-prefix meshgate-cluster1-$dpid" "$run/c1.log"
(sleep 1.5; ip netns exec "mgd-$id-app" ping -c 5 -i 0.2 -W 1 10.1.0.10 > /dev/null) &
pingpid=$!
cap=$(timeout 20 dpdk-dumpcap --file-prefix "meshgate-cluster1-$dpid" -i 1 -c 4 -w "$run/cap.pcapng" 2>&1); rc=$?
wait $pingpid
check "dumpcap rc=$rc: $(tail -2 <<<"$cap")" [ $rc -eq 0 ]
check "capture file written" [ -s "$run/cap.pcapng" ]
check "pcapng with the pings: $(tail -3 <<<"$cap")" grep -Eq "Packets received/dropped on interface 'net_af_packet1': [4-9]/0" <<<"$cap"
check "delete" "$ctl" -s "$run/admin.sock" delete CiliumNetworkPolicy only-test
# A policy change past 1,024 rules builds only the ACL partition of the
# subjects it selects (a second context), and about a second later the
# daemon merges the contexts back into one.
big() {  # $1: db's first port
  for j in $(seq 0 1099); do printf '  - toPorts: [{ports: [{port: "%d", protocol: TCP}]}]\n' $((10000 + j)); done |
    { printf 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: big-myapp}\nspec:\n  endpointSelector: {matchLabels: {app: myapp}}\n  ingress:\n'; cat; }
  printf -- '---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: big-db}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n'
  for j in $(seq 0 99); do printf '  - toPorts: [{ports: [{port: "%d", protocol: TCP}]}]\n' $(($1 + j)); done
}
big 30000 > "$run/big.yaml"
check "apply 1,200 rules" "$ctl" -s "$run/admin.sock" apply -f "$run/big.yaml"
for i in $(seq 1 100); do "$ctl" -s "$run/admin.sock" status | grep -q "acl *1201 rules in 16 partitions, 1 contexts" && break; sleep 0.05; done
check "one context: $("$ctl" -s "$run/admin.sock" status | grep acl)" grep -q "acl *1201 rules in 16 partitions, 1 contexts" <<<"$("$ctl" -s "$run/admin.sock" status)"
big 40000 > "$run/big.yaml"
check "change db's 100 rules" "$ctl" -s "$run/admin.sock" apply -f "$run/big.yaml"
for i in $(seq 1 100); do "$ctl" -s "$run/admin.sock" status | grep -q "acl .* 2 contexts" && break; sleep 0.02; done
check "db's partition rebuilt alone: $("$ctl" -s "$run/admin.sock" status | grep acl)" grep -q "acl .* 2 contexts (0 consolidations)" <<<"$("$ctl" -s "$run/admin.sock" status)"
for i in $(seq 1 100); do "$ctl" -s "$run/admin.sock" status | grep -q "acl .* 1 contexts (1 consolidations)" && break; sleep 0.05; done
check "consolidated: $("$ctl" -s "$run/admin.sock" status | grep acl)" grep -q "acl .* 1 contexts (1 consolidations)" <<<"$("$ctl" -s "$run/admin.sock" status)"
check "consolidation logged" grep -q "ACL consolidated into one context" "$run/c1.log"
check "delete the big policies" "$ctl" -s "$run/admin.sock" delete CiliumNetworkPolicy big-myapp
check "delete the big policies" "$ctl" -s "$run/admin.sock" delete CiliumNetworkPolicy big-db
out=$(ip netns exec "mgd-$id-fe" curl -s -m 3 http://10.1.0.20/index.html)
check "allowed after delete" [ "$out" = "hello from myapp" ]

# 4. Hostile feed input: refused with a reply, disconnected, daemon alive,
#    state untouched.
before=$("$ctl" -s "$run/admin.sock" get ipcache -o json)
hostile() {  # bytes as a python expression
  python3 - "$run/feed.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(eval(sys.argv[2]))
s.settimeout(3)
data = b""
try:
    while True:
        c = s.recv(4096)
        if not c: break
        data += c
except socket.timeout:
    print("no close"); sys.exit(1)
print(repr(data))
PY
}
r=$(hostile 'b"\x05\xff\xff\xff\xff\xff"')
check "garbage refused: $r" grep -q "not a meshgate.mesh.v1.Update" <<<"$r"
r=$(hostile 'b"\xff\xff\xff\x7f"')
check "oversized refused: $r" grep -q "exceeds the limit of 65536" <<<"$r"
r=$(hostile 'b"\x03\xa0\x06\x01"')  # field 100 (a newer sender's message): no known body
check "unknown type refused: $r" grep -q "unknown message type" <<<"$r"
python3 - "$run/feed.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"\x40\x08")  # announces 64 bytes, sends 1, hangs up
s.close()
PY
# The feed on loopback TCP: the same refusal.
r=$(python3 - $((mport + 1)) <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"\x05\xff\xff\xff\xff\xff")
data = b""
while True:
    c = s.recv(4096)
    if not c: break
    data += c
print(repr(data))
PY
)
check "TCP feed refuses garbage: $r" grep -q "not a meshgate.mesh.v1.Update" <<<"$r"
# ...and applies valid frames: hello, then an identity (hand-encoded protobuf).
python3 - $((mport + 1)) <<'PY'
import socket, sys, time
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def field(num, wire, payload):
    tag = varint(num << 3 | wire)
    return tag + (varint(len(payload)) + payload if wire == 2 else payload)
def frame(m): return varint(len(m)) + m
hello = field(2, 2, field(1, 0, varint(1)))
ident = field(4, 2, field(1, 0, varint(0x20005)) + field(2, 2, b"k8s:app=over-tcp"))
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(frame(hello) + frame(ident))
time.sleep(0.5)
s.close()
PY
check "TCP feed applied an identity" grep -q "131077 *k8s:app=over-tcp" <<<"$("$ctl" -s "$run/admin.sock" get identities)"
check "TCP feed logged" grep -q "feed: tcp 127.0.0.1:" "$run/c1.log"
sleep 0.3
check "daemon alive" kill -0 $dpid
check "state untouched" [ "$("$ctl" -s "$run/admin.sock" get ipcache -o json)" = "$before" ]

# A stuck observer (asks to follow, never reads) and a stuck feed client
# (half a frame, then nothing) block neither the workers nor other clients.
python3 - "$run/admin.sock" "$run/feed.sock" > "$run/stuck.out" 2>&1 <<'PY' &
import socket, sys, time
a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); a.connect(sys.argv[1])
a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
a.sendall(b"\x04\x22\x02\x08\x01")  # Request{observe{follow: true}}
f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); f.connect(sys.argv[2])
f.sendall(b"\x40\x08")
print("stuck", flush=True)
time.sleep(8)
PY
stuck=$!
sleep 0.5
out=$(ip netns exec "mgd-$id-fe" ping -c 20 -i 0.05 -W 1 10.1.0.20 2>&1 | grep -c "bytes from")
check "traffic flows beside stuck clients ($out/20)" [ "$out" -ge 19 ]
check "status answers beside stuck clients" timeout 5 "$ctl" -s "$run/admin.sock" status
check "get answers beside stuck clients" timeout 5 "$ctl" -s "$run/admin.sock" get endpoints
kill $stuck 2>/dev/null; wait $stuck 2>/dev/null
check "daemon alive after stuck clients" kill -0 $dpid
check "observer drops reported" grep -q "observer responses dropped" <<<"$("$ctl" -s "$run/admin.sock" status)"
check "observer drops in metrics" grep -q "^meshgate_observer_drops_total [0-9]" <<<"$(curl -s "http://127.0.0.1:$mport/metrics")"

# 5. Resync: the controller restarts with myapp gone; the daemon ends with
#    exactly the new state.
kill $mpid; wait $mpid 2>/dev/null
sed -i '/name: myapp/d' "$run/mesh.yaml"
"$mg" mesh --config "$run/mesh.yaml" > "$run/mesh2.log" 2>&1 &
mpid=$!
pids+=($mpid)
for i in $(seq 1 50); do "$ctl" -s "$run/admin.sock" get endpoints | grep -q myapp || break; sleep 0.1; done
eps=$("$ctl" -s "$run/admin.sock" get endpoints -o json)
check "resync removed myapp: $eps" [ -n "$(grep frontend <<<"$eps")" -a -z "$(grep myapp <<<"$eps")" ]
check "resync removed its ipcache entry" [ -z "$("$ctl" -s "$run/admin.sock" get ipcache | grep 10.1.0.20)" ]
check "config endpoint kept through the resync: $eps" grep -q '"ENDPOINT":"default/db","IDENTITY":"131071"' <<<"$eps"
check "its ipcache entry kept" grep -q "10.1.0.40/32 *131071" <<<"$("$ctl" -s "$run/admin.sock" get ipcache)"

# 6. Clean stop.
kill -TERM $dpid
wait $dpid; rc=$?
check "SIGTERM exit 0 (rc=$rc)" [ $rc -eq 0 ]
check "sockets removed" [ ! -e "$run/feed.sock" -a ! -e "$run/admin.sock" ]
check "stopped logged" grep -q "stopped" "$run/c1.log"
check "no hugepage files left" [ -z "$(ls /dev/hugepages 2>/dev/null | grep "meshgate-cluster1-${dpid}map_")" ]
check "no runtime directory left" [ ! -e "/var/run/dpdk/meshgate-cluster1-$dpid" ]

[ "$fail" -eq 0 ] || { echo "--- daemon log"; cat "$run/c1.log"; }
finish daemon_test
