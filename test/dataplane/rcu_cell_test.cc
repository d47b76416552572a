// Snapshot publication: readers never see a reclaimed snapshot, reclamation
// never blocks on a stuck reader, offline readers do not hold anything up.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "dataplane/rcu_cell.h"

using meshgate::dataplane::RcuCell;

namespace {

constexpr uint64_t kAlive = 0xA11FE, kDead = 0xDEAD;

struct Snap {
  uint64_t generation;
  uint64_t canary = kAlive;
  uint64_t payload[16] = {};
};

// Reclaimed snapshots are poisoned and parked, not freed, so that a reader
// that (wrongly) still held one would read the poison, not freed memory.
struct Graveyard {
  std::vector<Snap*> dead;
  void operator()(const Snap* s) {
    auto* m = const_cast<Snap*>(s);
    m->canary = kDead;
    dead.push_back(m);
  }
  ~Graveyard() {
    for (auto* s : dead) delete s;
  }
};

}  // namespace

TEST_CASE("1,000 snapshots swapped under two busy readers: none reads a reclaimed one",
          "[rcu][snapshot]") {
  auto graveyard = std::make_shared<Graveyard>();
  auto cell = RcuCell<Snap>::Create(2, [graveyard](const Snap* s) { (*graveyard)(s); });
  REQUIRE(cell.ok());
  RcuCell<Snap>& c = **cell;
  c.Publish(std::make_unique<Snap>(Snap{0}));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, reads{0}, regressions{0};
  auto reader = [&](uint32_t id) {
    REQUIRE(c.RegisterReader(id).ok());
    c.Online(id);
    uint64_t last = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const Snap* s = c.Read();  // once per "burst"
      for (int i = 0; i < 64; ++i) {
        if (s->canary != kAlive) bad.fetch_add(1, std::memory_order_relaxed);
      }
      if (s->generation < last) regressions.fetch_add(1, std::memory_order_relaxed);
      last = s->generation;
      reads.fetch_add(1, std::memory_order_relaxed);
      c.Quiescent(id);  // the loop's fixed point
    }
    c.Offline(id);
  };
  std::thread r0(reader, 0), r1(reader, 1);
  size_t freed = 0;
  for (uint64_t g = 1; g <= 1000; ++g) {
    c.Publish(std::make_unique<Snap>(Snap{g}));
    freed += c.Reclaim();
    std::this_thread::yield();
  }
  while (c.pending() > 0) {
    freed += c.Reclaim();
    std::this_thread::yield();
  }
  stop = true;
  r0.join();
  r1.join();
  CHECK(bad == 0);
  CHECK(regressions == 0);
  CHECK(reads > 0);
  CHECK(freed == 1000);
  CHECK(graveyard->dead.size() == 1000);
  CHECK(c.current_for_writer()->generation == 1000);
}

TEST_CASE("a reader that has not passed quiescence holds reclamation, without blocking",
          "[rcu][snapshot]") {
  auto cell = RcuCell<Snap>::Create(1);
  REQUIRE(cell.ok());
  RcuCell<Snap>& c = **cell;
  REQUIRE(c.RegisterReader(0).ok());
  c.Online(0);
  c.Publish(std::make_unique<Snap>(Snap{1}));
  const Snap* held = c.Read();
  c.Publish(std::make_unique<Snap>(Snap{2}));
  CHECK(c.Reclaim() == 0);  // returns at once; the reader may still use `held`
  CHECK(c.pending() == 1);
  CHECK(held->canary == kAlive);
  c.Quiescent(0);
  CHECK(c.Reclaim() == 1);
  // An offline reader does not hold anything up.
  c.Offline(0);
  c.Publish(std::make_unique<Snap>(Snap{3}));
  CHECK(c.Reclaim() == 1);
  CHECK_FALSE(c.RegisterReader(5).ok());  // beyond max_readers
}
