#!/bin/bash
# VMs on vhost-user: a meshgate daemon with two net_vhost endpoint ports (the
# vhost-user server), and two `meshgate vm` processes on net_virtio_user (what
# QEMU's virtio device looks like to meshgate): traffic between the VMs
# through a policy, a denied flow, a VM reaching a service (reverse NAT seen
# by the VM), ICMP, a VM that goes away (the workers carry on) and comes back
# with its policy still in force.
# Usage: vm_test.sh MESHGATE MESHGATECTL   (as root; vhost-user needs hugepages)
set -u
mg=$1
ctl=$2
source "$(dirname "$0")/../lib/check.sh"
run=$(mktemp -d /tmp/meshgate-vm-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$run"
}
trap cleanup EXIT
if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt 64 ] || ! grep -q ' hugetlbfs ' /proc/mounts; then
  echo "vm_test: vhost-user shares the VMs' memory through hugepages: reserve them (scripts/test does)"
  exit 1
fi

cat > "$run/c1.yaml" <<Y
cluster: {name: cluster1, id: 1}
lcores: [1]
idleSleepUs: 200
ports:
  - {device: "net_vhost0,iface=$run/vm1.sock,queues=1", role: endpoint}
  - {device: "net_vhost1,iface=$run/vm2.sock,queues=1", role: endpoint}
sockets: {feed: $run/feed.sock, admin: $run/admin.sock}
Y
cat > "$run/mesh.yaml" <<Y
name: vms
admin: $run/mesh.sock
clusters: [{name: cluster1, id: 1, feed: $run/feed.sock}]
endpoints:
  - {name: vm1, cluster: cluster1, labels: {app: frontend}, ipv4: 10.1.0.10, port: 0, mac: "02:00:01:00:00:00"}
  - {name: vm2, cluster: cluster1, labels: {app: myapp}, ipv4: 10.1.0.20, port: 1, mac: "02:00:01:00:00:01"}
Y
"$mg" run --config "$run/c1.yaml" > "$run/c1.log" 2>&1 &
dpid=$!
pids+=($dpid)
for i in $(seq 1 100); do [ -S "$run/feed.sock" ] && break; sleep 0.1; done
"$mg" mesh --config "$run/mesh.yaml" > "$run/mesh.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do "$ctl" -s "$run/admin.sock" status 2>/dev/null | grep -q "feed synced *yes" && break; sleep 0.1; done
check "vhost-user sockets created by meshgate" [ -S "$run/vm1.sock" -a -S "$run/vm2.sock" ]

vm1() { "$mg" vm --socket "$run/vm1.sock" --mac 02:00:01:00:00:00 --ip 10.1.0.10 "$@" 2>&1; }
start_vm2() {
  "$mg" vm --socket "$run/vm2.sock" --mac 02:00:01:00:00:01 --ip 10.1.0.20 --serve > "$run/vm2.log" 2>&1 &
  vm2=$!
  pids+=($vm2)
  sleep 1
}
start_vm2
out=$(vm1 --probe 10.1.0.20:80 --expect allow); rc=$?
check "VM to VM (rc=$rc): $out" [ $rc -eq 0 ]
out=$(vm1 --probe 10.1.0.20 --protocol ICMP --expect allow); rc=$?
check "ping VM to VM (rc=$rc): $out" [ $rc -eq 0 ]
out=$(vm1 --probe 10.1.0.20:53 --protocol UDP --expect allow); rc=$?
check "UDP VM to VM (rc=$rc): $out" [ $rc -eq 0 ]

cat > "$run/svc.yaml" <<'Y'
apiVersion: v1
kind: Service
metadata: {name: myapp, annotations: {service.cilium.io/global: "true"}}
spec:
  clusterIP: 10.96.0.80
  selector: {app: myapp}
  ports: [{port: 80, targetPort: 8080}]
Y
"$ctl" -s "$run/mesh.sock" apply --cluster cluster1 -f "$run/svc.yaml" > /dev/null
for i in $(seq 1 30); do "$ctl" -s "$run/admin.sock" get services | grep -q "10.1.0.20:8080" && break; sleep 0.1; done
out=$(vm1 --probe 10.96.0.80:80 --expect allow); rc=$?
check "VM to a service, answered by the VIP (rc=$rc): $out" [ $rc -eq 0 ]
check "answer from the frontend" grep -q "from 10.96.0.80:80" <<<"$out"

cat > "$run/pol.yaml" <<'Y'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: myapp-from-test}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: test}}]}]
Y
"$ctl" -s "$run/admin.sock" apply -f "$run/pol.yaml" > /dev/null
out=$(vm1 --probe 10.1.0.20:80 --expect deny); rc=$?
check "denied flow (rc=$rc): $out" [ $rc -eq 0 ]
check "drop observed" grep -q "DROPPED (POLICY_DENIED)" <<<"$("$ctl" -s "$run/admin.sock" observe --verdict DROPPED --last 1)"
out=$(vm1 --probe 10.96.0.80:80 --expect deny); rc=$?
check "service denied at the backend port (rc=$rc): $out" [ $rc -eq 0 ]

# VM2 goes away: the workers carry on (VM1's ARP is still answered);
# it comes back and the policy is still in force.
kill $vm2; wait $vm2 2>/dev/null
out=$(vm1 --probe 10.1.0.20 --protocol ICMP --expect deny); rc=$?
check "VM2 gone, VM1 still served (rc=$rc): $out" [ $rc -eq 0 ]
check "daemon alive" kill -0 $dpid
start_vm2
out=$(vm1 --probe 10.1.0.20:80 --expect deny); rc=$?
check "after reconnect the policy is in force (rc=$rc): $out" [ $rc -eq 0 ]
"$ctl" -s "$run/admin.sock" delete CiliumNetworkPolicy myapp-from-test > /dev/null
out=$(vm1 --probe 10.1.0.20:80 --expect allow); rc=$?
check "after reconnect traffic flows (rc=$rc): $out" [ $rc -eq 0 ]
check "vhost stats counted" grep -Eq "^1 +net_vhost1.* endpoint +[1-9]" <<<"$("$ctl" -s "$run/admin.sock" stats)"

[ "$fail" -eq 0 ] || { echo "--- daemon log"; cat "$run/c1.log"; }

# Multi-queue: two queue pairs per vhost-user port and two workers (lcores 1
# and 2, both on CPU 1: this machine may have two CPUs). The VMs spread
# their connections over both queues; each worker serves its queue of every
# port, so both workers forward and every connection is answered.
kill $vm2 $dpid 2>/dev/null; wait $vm2 $dpid 2>/dev/null
cat > "$run/mq.yaml" <<Y
cluster: {name: cluster1, id: 1}
lcores: ["1@1", "2@1"]
idleSleepUs: 200
ports:
  - {device: "net_vhost2,iface=$run/mq1.sock,queues=2", role: endpoint}
  - {device: "net_vhost3,iface=$run/mq2.sock,queues=2", role: endpoint}
sockets: {feed: $run/mqfeed.sock, admin: $run/mqadmin.sock}
Y
sed -e "s#$run/feed.sock#$run/mqfeed.sock#; s#$run/mesh.sock#$run/mqmesh.sock#" "$run/mesh.yaml" > "$run/mqmesh.yaml"
"$mg" run --config "$run/mq.yaml" > "$run/mq.log" 2>&1 &
mqpid=$!
pids+=($mqpid)
for i in $(seq 1 100); do [ -S "$run/mqfeed.sock" ] && break; sleep 0.1; done
"$mg" mesh --config "$run/mqmesh.yaml" > "$run/mqmesh.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do "$ctl" -s "$run/mqadmin.sock" status 2>/dev/null | grep -q "feed synced *yes" && break; sleep 0.1; done
check "two workers on lcores 1 and 2" grep -q "2 worker(s) on lcores 1,2" "$run/mq.log"
"$mg" vm --socket "$run/mq2.sock" --mac 02:00:01:00:00:01 --ip 10.1.0.20 --serve --queues 2 > "$run/mqvm2.log" 2>&1 &
mqvm2=$!
pids+=($mqvm2)
sleep 1
out=$("$mg" vm --socket "$run/mq1.sock" --mac 02:00:01:00:00:00 --ip 10.1.0.10 --queues 2 \
        --probe 10.1.0.20:80 --count 8 --expect allow 2>&1); rc=$?
check "multi-queue VM to VM, 8 connections answered (rc=$rc): $out" [ $rc -eq 0 ]
check "the VM sent on both queues: $out" grep -Eq "q0 tx [1-9][0-9]* rx [1-9].*q1 tx [1-9][0-9]* rx [1-9]" <<<"$out"
st=$("$ctl" -s "$run/mqadmin.sock" stats -o json)
fw=$(python3 -c 'import json,sys
print(" ".join(r["FORWARDED"] for r in json.load(sys.stdin)["lcores"]))' <<<"$st" 2>&1)
check "both workers forwarded (per worker: $fw)" bash -c '[ $# -eq 2 ] && [ "$1" -gt 0 ] && [ "$2" -gt 0 ]' _ $fw
kill $mqvm2; wait $mqvm2 2>/dev/null
check "multi-queue daemon alive after the VM left" kill -0 $mqpid
[ "$fail" -eq 0 ] || { echo "--- multi-queue daemon log"; cat "$run/mq.log"; }
finish vm_test
