#include "dataplane/flow_event.h"

#include <rte_errno.h>

#include <atomic>

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {
std::atomic<uint64_t> g_ring_seq{0};
}

absl::StatusOr<std::unique_ptr<FlowEventRing>> FlowEventRing::Create(uint32_t capacity) {
  std::unique_ptr<FlowEventRing> f(new FlowEventRing());
  std::string name = meshgate::StrCat("mgflow", g_ring_seq.fetch_add(1));
  uint32_t size = 1;
  while (size < capacity + 1) size <<= 1;
  f->r_ = rte_ring_create_elem(name.c_str(), sizeof(FlowEvent), size, SOCKET_ID_ANY,
                               RING_F_SC_DEQ);
  if (f->r_ == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("flow event ring: ", rte_strerror(rte_errno)));
  }
  return f;
}

FlowEventRing::~FlowEventRing() {
  if (r_ != nullptr) rte_ring_free(r_);
}

}  // namespace meshgate::dataplane
