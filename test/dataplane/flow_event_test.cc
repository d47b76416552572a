// Flow events: one per drop and one per new connection's verdict, with
// Hubble's fields; a full ring is counted, never blocks.
#include <catch2/catch.hpp>

#include "dataplane/conntrack.h"
#include "dataplane/flow_event.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

TEST_CASE("drops and new connections become flow events with Hubble's fields",
          "[events][cilium:api/v1/flow/flow.proto]") {
  Node n;
  n.w.Apply(kMyappFromFrontend);
  auto cell = RcuCell<Snapshot>::Create(1);
  auto ct = Conntrack::Create(256, (*cell)->qsbr());
  auto ring = FlowEventRing::Create(64);
  REQUIRE(ring.ok());
  Pipeline pl(**cell, 0, ct->get(), ring->get());
  auto snap = n.Build();
  Run r{{}, &pl};
  uint16_t fe = n.port["frontend"], te = n.port["test"], my = n.port["myapp"];
  r.Send(*snap, te, TcpFrame("10.1.0.11", "10.1.0.20", 80));   // denied: 133 at ingress
  r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));   // new, allowed
  for (auto* m : r.Take(my)) rte_pktmbuf_free(m);
  r.Send(*snap, my, Eth(0x0800, Ipv4(V4("10.1.0.20"), V4("10.1.0.10"), 6, Tcp(80, 40000, 0x12))));
  for (auto* m : r.Take(fe)) rte_pktmbuf_free(m);               // a reply: no event
  r.Send(*snap, fe, TcpFrame("10.1.0.99", "10.1.0.20", 80));   // spoofed: 132
  FlowEvent ev[8];
  REQUIRE((*ring)->Dequeue(ev, 8) == 3);
  CHECK(ev[0].verdict == uint8_t(classifier::Verdict::kDropped));
  CHECK(ev[0].drop_reason == 133);
  CHECK(ev[0].direction == uint8_t(TrafficDirection::kIngress));
  CHECK(ev[0].src_identity == n.w.Get("test").id);
  CHECK(ev[0].dst_identity == n.w.Get("myapp").id);
  CHECK(ev[0].family == 4);
  CHECK(ev[0].proto == 6);
  CHECK(ev[0].dport == 80);
  CHECK(ev[0].sport == 40000);
  CHECK(ev[0].tcp_flags == 0x02);
  CHECK(ev[0].src[3] == 11);
  CHECK(ev[0].dst[3] == 20);
  CHECK(ev[0].in_port == te);
  CHECK(ev[1].verdict == uint8_t(classifier::Verdict::kForwarded));
  CHECK(ev[1].drop_reason == 0);
  CHECK(ev[1].rule_id != 0);  // the allowing rule
  CHECK(ev[1].is_reply == 0);
  CHECK(ev[2].drop_reason == 132);
  CHECK(pl.counters().events == 3);
}

TEST_CASE("a full event ring loses events, counted, and never blocks the worker", "[events]") {
  Node n;
  auto cell = RcuCell<Snapshot>::Create(1);
  auto ring = FlowEventRing::Create(4);
  Pipeline pl(**cell, 0, nullptr, ring->get());
  auto snap = n.Build();
  Run r{{}, &pl};
  for (int i = 0; i < 20; ++i) r.Send(*snap, n.port["frontend"], Bytes(20, 0));  // 20 drops
  CHECK(pl.counters().events + pl.counters().events_lost == 20);
  CHECK(pl.counters().events == (*ring)->count());  // what fits (rte_ring: 8 slots, 7 usable)
  CHECK(pl.counters().events_lost == 20 - (*ring)->count());
  CHECK(pl.counters().events_lost >= 12);
  CHECK(pl.dropped(DropReason::kUnsupportedL3Protocol) == 20);
}
