#include "control/daemon.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_pdump.h>
#include <rte_telemetry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/core.h>

#include <chrono>
#include <deque>
#include <memory>
#include <set>
#include <tuple>

#include "classifier/explain.h"
#include "control/agent.h"
#include "control/feed.h"
#include "control/proto/admin.pb.h"
#include "dataplane/drop.h"
#include "dataplane/eal.h"
#include "dataplane/packet.h"
#include "identity/endpoint.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using unix_socket = asio::local::stream_protocol;
namespace v1 = meshgate::mesh::v1;
namespace adm = meshgate::admin::v1;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Daemon;

// One mesh feed connection (Unix or TCP): frames in, refusals out.
template <typename Socket>
class FeedSession : public std::enable_shared_from_this<FeedSession<Socket>> {
 public:
  FeedSession(Daemon& d, Socket s, size_t max_frame, std::string peer)
      : d_(d), s_(std::move(s)), decoder_(max_frame), peer_(std::move(peer)) {}
  void Start();

 private:
  void Read();
  void Refuse(uint64_t revision, const std::string& why);
  Daemon& d_;
  Socket s_;
  FrameDecoder decoder_;
  FeedSender sender_;
  std::string peer_;
  std::array<char, 65536> buf_;
  std::string out_;
};

// One meshgatectl connection: a request, then responses.
class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(Daemon& d, unix_socket::socket s) : d_(d), s_(std::move(s)) {}
  void Start();
  // Queues a response; drops it (and counts) when the client is too slow.
  void Send(const adm::Response& r);
  bool following() const { return follow_; }
  const adm::Observe& filter() const { return filter_; }
  bool closed() const { return closed_; }
  void Close();

 private:
  void ReadRequest();
  void Write();
  Daemon& d_;
  unix_socket::socket s_;
  FrameDecoder decoder_{1u << 20};
  std::array<char, 8192> buf_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false, follow_ = false, closed_ = false;
  adm::Observe filter_;
};

struct StoredFlow {
  int64_t time_ns;
  dataplane::FlowEvent ev;
};

class Daemon {
 public:
  explicit Daemon(const DaemonConfig& c) : c_(c), signals_(io_, SIGINT, SIGTERM) {}
  int Run();

  // Feed: apply one update from a connection.
  absl::Status ApplyFeed(const v1::Update& u, FeedSender& from) {
    auto st = agent_->Apply(u, from);
    if (st.ok()) ScheduleCommit();
    return st;
  }
  void FeedConnected(int delta) { feeds_ += delta; }
  void Handle(const std::shared_ptr<AdminSession>& s, const adm::Request& r);
  void Log(const std::string& msg) {
    fmt::print(stderr, "meshgate[{}]: {}\n", c_.cluster, msg);
  }
  uint64_t dropped_admin_ = 0;

 private:
  absl::Status Listen();
  template <typename Acceptor, typename Session>
  void Accept(Acceptor& a, size_t max_frame);
  void AcceptAdmin();
  void AcceptMetrics();
  void ScheduleCommit();
  absl::Status Commit();
  void ScheduleConsolidation();
  absl::Status AttachConfigEndpoints();
  void DrainEvents();
  void Maintain();
  adm::Flow ToFlow(const StoredFlow& f) const;
  bool Matches(const adm::Observe& o, const adm::Flow& f) const;
  adm::Response Get(const std::string& what);
  adm::Response Stats();
  adm::Response Status();
  adm::Response Explain(const adm::Explain& e);
  std::string Metrics();
  std::vector<std::string> LabelsOf(uint32_t id) const;

  const DaemonConfig& c_;
  asio::io_context io_;
  asio::signal_set signals_;
  std::unique_ptr<unix_socket::acceptor> feed_acc_, admin_acc_;
  std::unique_ptr<asio::ip::tcp::acceptor> tcp_acc_, metrics_acc_;
  std::unique_ptr<asio::steady_timer> commit_timer_, events_timer_, maintain_timer_,
      consolidate_timer_;
  bool consolidate_pending_ = false;
  uint64_t consolidations_ = 0;
  bool commit_pending_ = false;
  std::unique_ptr<dataplane::Instance> inst_;
  std::unique_ptr<Agent> agent_;
  int feeds_ = 0;
  std::deque<StoredFlow> flows_;
  std::vector<std::weak_ptr<AdminSession>> observers_;
  int64_t last_commit_ns_ = 0;
  std::vector<double> commit_ms_;  // for the histogram
  uint64_t commit_errors_ = 0;
  std::string last_commit_error_;
 public:
  static Daemon* telemetry_;  // DPDK telemetry callbacks take no argument
  std::string TelemetryStatus();
};
Daemon* Daemon::telemetry_ = nullptr;

// ---- feed sessions ----

template <typename Socket>
void FeedSession<Socket>::Start() {
  d_.FeedConnected(1);
  d_.Log(StrCat("feed: ", peer_, " connected"));
  Read();
}

template <typename Socket>
void FeedSession<Socket>::Read() {
  auto self = this->shared_from_this();
  s_.async_read_some(asio::buffer(buf_), [this, self](boost::system::error_code ec, size_t n) {
    if (ec) {
      d_.FeedConnected(-1);
      d_.Log(StrCat("feed: ", peer_, " disconnected after ", decoder_.frames(), " frames"));
      return;
    }
    decoder_.Feed(std::string_view(buf_.data(), n));
    v1::Update u;
    for (;;) {
      auto more = decoder_.Next(u);
      if (!more.ok()) return Refuse(0, std::string(more.status().message()));
      if (!*more) break;
      if (auto st = d_.ApplyFeed(u, sender_); !st.ok()) {
        return Refuse(u.revision(), std::string(st.message()));
      }
    }
    Read();
  });
}

template <typename Socket>
void FeedSession<Socket>::Refuse(uint64_t revision, const std::string& why) {
  d_.Log(StrCat("feed: ", peer_, ": refused: ", why, " (disconnecting; the state applied so far stays)"));
  v1::Reply r;
  r.set_revision(revision);
  r.set_ok(false);
  r.set_error(why);
  out_ = EncodeFrame(r);
  auto self = this->shared_from_this();
  asio::async_write(s_, asio::buffer(out_), [this, self](boost::system::error_code, size_t) {
    boost::system::error_code ignored;
    s_.close(ignored);
    d_.FeedConnected(-1);
  });
}

// ---- admin sessions ----

void AdminSession::Start() { ReadRequest(); }

void AdminSession::ReadRequest() {
  auto self = shared_from_this();
  s_.async_read_some(asio::buffer(buf_), [this, self](boost::system::error_code ec, size_t n) {
    if (ec) {
      Close();
      return;
    }
    if (follow_) {  // anything after the request: ignored; wait for close
      ReadRequest();
      return;
    }
    decoder_.Feed(std::string_view(buf_.data(), n));
    adm::Request req;
    auto more = decoder_.Next(req);
    if (!more.ok()) {
      adm::Response r;
      r.set_error(std::string(more.status().message()));
      r.set_done(true);
      Send(r);
      return;
    }
    if (!*more) {
      ReadRequest();
      return;
    }
    if (req.has_observe() && req.observe().follow()) {
      follow_ = true;
      filter_ = req.observe();
    }
    d_.Handle(self, req);
    ReadRequest();  // notices the client closing
  });
}

void AdminSession::Send(const adm::Response& r) {
  if (closed_) return;
  std::string f = EncodeFrame(r);
  if (queued_bytes_ + f.size() > (8u << 20) && !r.done()) {
    ++d_.dropped_admin_;  // a stuck observer loses flows, nobody waits
    return;
  }
  queued_bytes_ += f.size();
  queue_.push_back(std::move(f));
  if (!writing_) Write();
}

void AdminSession::Write() {
  if (queue_.empty() || closed_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(s_, asio::buffer(queue_.front()),
                    [this, self](boost::system::error_code ec, size_t) {
                      queued_bytes_ -= queue_.front().size();
                      queue_.pop_front();
                      if (ec) {
                        Close();
                        return;
                      }
                      Write();
                    });
}

void AdminSession::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  s_.close(ignored);
}

// ---- the daemon ----

absl::Status Daemon::Listen() {
  auto unix_listen = [&](const std::string& path, std::unique_ptr<unix_socket::acceptor>& acc) -> absl::Status {
    // A live socket at the path belongs to another daemon: refuse; a stale
    // one (nobody listening) is replaced.
    if (::access(path.c_str(), F_OK) == 0) {
      unix_socket::socket probe(io_);
      boost::system::error_code ec;
      probe.connect(unix_socket::endpoint(path), ec);
      if (!ec) return absl::AlreadyExistsError(StrCat(path, ": socket in use by another process"));
      ::unlink(path.c_str());
    }
    boost::system::error_code ec;
    acc = std::make_unique<unix_socket::acceptor>(io_);
    acc->open(unix_socket(), ec);
    if (!ec) acc->bind(unix_socket::endpoint(path), ec);
    if (!ec) acc->listen(64, ec);
    if (ec) return absl::UnavailableError(StrCat(path, ": ", ec.message()));
    if (::chmod(path.c_str(), c_.socket_mode) != 0) {
      return absl::PermissionDeniedError(StrCat(path, ": chmod failed"));
    }
    return absl::OkStatus();
  };
  if (auto st = unix_listen(c_.feed_socket, feed_acc_); !st.ok()) return st;
  if (auto st = unix_listen(c_.admin_socket, admin_acc_); !st.ok()) return st;
  if (c_.feed_tcp) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(c_.feed_tcp_address, ec);
    if (ec) return absl::InvalidArgumentError(StrCat("sockets.tcp.address: ", ec.message()));
    tcp_acc_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
    asio::ip::tcp::endpoint ep(addr, c_.feed_tcp_port);
    tcp_acc_->open(ep.protocol(), ec);
    if (!ec) tcp_acc_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) tcp_acc_->bind(ep, ec);
    if (!ec) tcp_acc_->listen(16, ec);
    if (ec) return absl::UnavailableError(StrCat("feed TCP ", c_.feed_tcp_address, ":", c_.feed_tcp_port, ": ", ec.message()));
  }
  if (!c_.metrics.empty()) {
    auto colon = c_.metrics.rfind(':');
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(c_.metrics.substr(0, colon), ec);
    if (colon == std::string::npos || ec) return absl::InvalidArgumentError(StrCat("metrics: \"", c_.metrics, "\" is not ADDRESS:PORT"));
    asio::ip::tcp::endpoint ep(addr, uint16_t(std::stoul(c_.metrics.substr(colon + 1))));
    metrics_acc_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
    metrics_acc_->open(ep.protocol(), ec);
    if (!ec) metrics_acc_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) metrics_acc_->bind(ep, ec);
    if (!ec) metrics_acc_->listen(16, ec);
    if (ec) return absl::UnavailableError(StrCat("metrics ", c_.metrics, ": ", ec.message()));
  }
  return absl::OkStatus();
}

template <typename Acceptor, typename Session>
void Daemon::Accept(Acceptor& a, size_t max_frame) {
  a.async_accept([this, &a, max_frame](boost::system::error_code ec, auto sock) {
    if (ec) return;  // closed at stop
    std::string peer = "unix";
    if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
      boost::system::error_code e2;
      auto ep = sock.remote_endpoint(e2);
      if (!e2) peer = StrCat("tcp ", ep.address().to_string(), ":", ep.port());
    }
    std::make_shared<Session>(*this, std::move(sock), max_frame, peer)->Start();
    Accept<Acceptor, Session>(a, max_frame);
  });
}

void Daemon::AcceptAdmin() {
  admin_acc_->async_accept([this](boost::system::error_code ec, unix_socket::socket sock) {
    if (ec) return;
    std::make_shared<AdminSession>(*this, std::move(sock))->Start();
    AcceptAdmin();
  });
}

void Daemon::AcceptMetrics() {
  metrics_acc_->async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket sock) {
    if (ec) return;
    struct Conn {
      asio::ip::tcp::socket s;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::response<http::string_body> res;
    };
    auto conn = std::make_shared<Conn>(Conn{std::move(sock), {}, {}, {}});
    http::async_read(conn->s, conn->buf, conn->req, [this, conn](beast::error_code ec, size_t) {
      if (ec) return;
      conn->res.version(conn->req.version());
      if (conn->req.target() == "/metrics") {
        conn->res.result(http::status::ok);
        conn->res.set(http::field::content_type, "text/plain; version=0.0.4");
        conn->res.body() = Metrics();
      } else {
        conn->res.result(http::status::not_found);
        conn->res.body() = "meshgate serves /metrics\n";
      }
      conn->res.keep_alive(false);
      conn->res.prepare_payload();
      http::async_write(conn->s, conn->res, [conn](beast::error_code, size_t) {
        beast::error_code ignored;
        conn->s.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      });
    });
    AcceptMetrics();
  });
}

void Daemon::ScheduleCommit() {
  if (commit_pending_) return;
  commit_pending_ = true;
  commit_timer_->expires_after(std::chrono::milliseconds(10));
  commit_timer_->async_wait([this](boost::system::error_code ec) {
    commit_pending_ = false;
    if (!ec) (void)Commit();
  });
}

absl::Status Daemon::Commit() {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t before = agent_->Counts().generation;
  if (auto st = agent_->Commit(); !st.ok()) {
    ++commit_errors_;
    last_commit_error_ = std::string(st.message());
    Log(StrCat("commit failed, the last snapshot stays in force: ", st.message()));
    return st;
  }
  if (agent_->Counts().generation == before) return absl::OkStatus();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  commit_ms_.push_back(ms);
  last_commit_ns_ = NowNs();
  auto c = agent_->Counts();
  Log(StrCat("snapshot ", c.generation, " published in ", fmt::format("{:.1f}", ms), " ms (",
             c.identities, " identities, ", c.ipcache, " ipcache entries, ", c.endpoints,
             " endpoints, ", c.policies, " policies, ", c.frontends, " service frontends)"));
  if (agent_->NeedsConsolidation()) ScheduleConsolidation();
  return absl::OkStatus();
}

// A policy change rebuilt only its ACL partitions and classifies with a
// context per changed partition (classifier/acl_table.h); a second later,
// when no commit is waiting, one snapshot merges them back into one
// context. The verdicts are the same; only the cost of a classify changes.
void Daemon::ScheduleConsolidation() {
  if (consolidate_pending_) return;
  consolidate_pending_ = true;
  consolidate_timer_->expires_after(std::chrono::seconds(1));
  consolidate_timer_->async_wait([this](boost::system::error_code ec) {
    consolidate_pending_ = false;
    if (ec || !agent_->NeedsConsolidation()) return;
    if (commit_pending_) {
      ScheduleConsolidation();  // changes still arriving: later
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    if (auto st = agent_->Consolidate(); !st.ok()) {
      Log(StrCat("ACL consolidation failed, the snapshot in force stays: ", st.message()));
      return;
    }
    ++consolidations_;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    last_commit_ns_ = NowNs();
    Log(StrCat("snapshot ", agent_->Counts().generation, ": ACL consolidated into one context in ",
               fmt::format("{:.1f}", ms), " ms"));
  });
}

void Daemon::DrainEvents() {
  dataplane::FlowEvent ev[256];
  int64_t now = NowNs();
  uint64_t now_tsc = rte_rdtsc(), hz = rte_get_tsc_hz();
  std::vector<size_t> fresh;
  for (;;) {
    uint32_t n = inst_->events().Dequeue(ev, 256);
    for (uint32_t i = 0; i < n; ++i) {
      int64_t age_ns = now_tsc > ev[i].tsc ? int64_t((now_tsc - ev[i].tsc) * 1e9 / double(hz)) : 0;
      flows_.push_back({now - age_ns, ev[i]});
      if (flows_.size() > 8192) flows_.pop_front();
    }
    if (n == 0) break;
    fresh.push_back(n);
  }
  size_t total = 0;
  for (size_t k : fresh) total += k;
  if (total > 0) {
    std::erase_if(observers_, [](const auto& w) { return w.expired() || w.lock()->closed(); });
    for (auto& w : observers_) {
      auto o = w.lock();
      adm::Response r;
      r.set_ok(true);
      for (size_t i = flows_.size() - std::min(total, flows_.size()); i < flows_.size(); ++i) {
        adm::Flow f = ToFlow(flows_[i]);
        if (Matches(o->filter(), f)) *r.add_flows() = std::move(f);
      }
      if (r.flows_size() > 0) o->Send(r);
    }
  }
  events_timer_->expires_after(std::chrono::milliseconds(50));
  events_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) DrainEvents();
  });
}

// Every 100 ms: expired connections and affinity entries out, in steps that
// sweep each table in about 10 s (at least 4,096 slots a step), and retired
// snapshots and ipcache slots freed (dataplane/instance.h).
void Daemon::Maintain() {
  uint32_t slots = 2 * std::max(c_.conntrack_size, inst_->affinity().capacity());
  inst_->Maintain(rte_rdtsc(), std::max<uint32_t>(4096, slots / 100));
  maintain_timer_->expires_after(std::chrono::milliseconds(100));
  maintain_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) Maintain();
  });
}

// The config's endpoints, through the same actions as the feed's, from a
// persistent sender (a resync does not remove them). Identities come from
// the top of this cluster's range, down.
absl::Status Daemon::AttachConfigEndpoints() {
  FeedSender self;
  self.persistent = true;
  const auto& layout = agent_->identities().layout();
  for (const auto& e : c_.endpoints) {
    identity::EndpointSpec spec;
    spec.name = e.spec.name;
    spec.ns = e.spec.ns;
    spec.cluster = c_.cluster;
    spec.labels = e.spec.labels;
    spec.service_account = e.spec.service_account;
    identity::Labels labels = identity::IdentityLabels(spec);
    uint32_t id = layout.MaxId(c_.cluster_id);
    for (;; --id) {
      if (id < layout.MinId(c_.cluster_id)) return absl::ResourceExhaustedError("no identity left");
      const identity::Labels* have = agent_->identities().Find(id);
      if (have == nullptr || *have == labels) break;
    }
    v1::Update u;
    auto* iu = u.mutable_identity_upsert();
    iu->set_id(id);
    for (const auto& l : labels.list()) iu->add_labels(l.ToString());
    if (auto st = agent_->Apply(u, self); !st.ok()) return st;
    v1::Update att;
    auto* a = att.mutable_endpoint_attach();
    a->set_name(e.spec.name);
    a->set_namespace_(e.spec.ns);
    a->set_identity(id);
    a->set_port(e.port);
    char mac[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(mac, sizeof mac, &e.mac);
    a->set_mac(mac);
    for (const auto& addr : {e.spec.ipv4, e.spec.ipv6}) {
      if (!addr) continue;
      a->add_addresses(addr->ToString());
      v1::Update ip;
      auto* x = ip.mutable_ipcache_upsert();
      x->set_prefix(identity::Prefix::Host(*addr).ToString());
      x->set_identity(id);
      x->set_cluster(c_.cluster);
      if (auto st = agent_->Apply(ip, self); !st.ok()) return st;
    }
    if (auto st = agent_->Apply(att, self); !st.ok()) {
      return absl::Status(st.code(), StrCat("endpoint ", e.spec.name, ": ", st.message()));
    }
    Log(StrCat("endpoint ", e.spec.ns, "/", e.spec.name, " from the config: identity ", id, ", port ", e.port));
  }
  return absl::OkStatus();
}

std::vector<std::string> Daemon::LabelsOf(uint32_t id) const {
  std::vector<std::string> v;
  if (const auto* l = agent_->identities().Find(id)) {
    for (const auto& x : l->list()) v.push_back(x.ToString());
  }
  return v;
}

adm::Flow Daemon::ToFlow(const StoredFlow& s) const {
  const auto& e = s.ev;
  adm::Flow f;
  f.set_time_unix_ns(s.time_ns);
  f.set_verdict(std::string(classifier::VerdictName(classifier::Verdict(e.verdict))));
  f.set_drop_reason(e.drop_reason);
  if (e.drop_reason) f.set_drop_reason_desc(std::string(dataplane::DropReasonEnumName(dataplane::DropReason(e.drop_reason))));
  identity::IpAddr src, dst;
  if (e.family == 6) {
    src.family = dst.family = identity::Family::kIpv6;
    std::memcpy(src.bytes.data(), e.src, 16);
    std::memcpy(dst.bytes.data(), e.dst, 16);
  } else {
    std::memcpy(src.bytes.data(), e.src, 4);
    std::memcpy(dst.bytes.data(), e.dst, 4);
  }
  if (e.family) {
    f.set_ip_source(src.ToString());
    f.set_ip_destination(dst.ToString());
  }
  const char* proto = e.proto == 6 ? "TCP" : e.proto == 17 ? "UDP" : e.proto == 132 ? "SCTP"
                    : e.proto == 1 ? "ICMPv4" : e.proto == 58 ? "ICMPv6" : "";
  f.set_l4_protocol(proto);
  f.set_source_port(e.sport);
  f.set_destination_port(e.dport);
  f.set_source_identity(e.src_identity);
  f.set_destination_identity(e.dst_identity);
  for (auto& l : LabelsOf(e.src_identity)) f.add_source_labels(l);
  for (auto& l : LabelsOf(e.dst_identity)) f.add_destination_labels(l);
  f.set_traffic_direction(e.direction == 1 ? "INGRESS" : e.direction == 2 ? "EGRESS" : "TRAFFIC_DIRECTION_UNKNOWN");
  f.set_is_reply(e.is_reply);
  std::string flags;
  for (auto [bit, name] : {std::pair{0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}}) {
    if (e.tcp_flags & bit) StrAppend(&flags, flags.empty() ? "" : ",", name);
  }
  f.set_tcp_flags(flags);
  f.set_policy_rule(e.rule_id);
  f.set_node_name(c_.cluster);
  std::string summary = StrCat(proto, e.proto == 6 && !flags.empty() ? " Flags: " + flags : "");
  if (e.drop_reason) StrAppend(&summary, " (", dataplane::DropReasonText(dataplane::DropReason(e.drop_reason)), ")");
  f.set_summary(summary);
  return f;
}

bool Daemon::Matches(const adm::Observe& o, const adm::Flow& f) const {
  if (!o.verdict().empty() && o.verdict() != f.verdict()) return false;
  if (!o.from_ip().empty() && o.from_ip() != f.ip_source()) return false;
  if (!o.to_ip().empty() && o.to_ip() != f.ip_destination()) return false;
  if (o.port() && o.port() != f.destination_port() && o.port() != f.source_port()) return false;
  if (!o.protocol().empty()) {
    std::string p = o.protocol();
    for (auto& ch : p) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    std::string fp = f.l4_protocol();
    if (p == "ICMP") p = "ICMPV4";
    for (auto& ch : fp) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    if (p != fp) return false;
  }
  if (o.since_unix_ms() && f.time_unix_ns() / 1000000 < o.since_unix_ms()) return false;
  auto has = [](const auto& labels, const std::string& want) {
    // "app=frontend" matches "k8s:app=frontend"; a source prefix must match exactly.
    for (const auto& l : labels) {
      if (l == want) return true;
      auto colon = l.find(':');
      if (want.find(':') == std::string::npos && colon != std::string::npos && l.substr(colon + 1) == want) return true;
    }
    return false;
  };
  for (const auto& l : o.from_label()) {
    if (!has(f.source_labels(), l)) return false;
  }
  for (const auto& l : o.to_label()) {
    if (!has(f.destination_labels(), l)) return false;
  }
  return true;
}

adm::Response Daemon::Get(const std::string& what) {
  adm::Response r;
  r.set_ok(true);
  r.set_done(true);
  adm::Table* t = r.add_tables();
  t->set_title(what);
  auto row = [&](std::initializer_list<std::string> cells) {
    auto* x = t->add_rows();
    for (const auto& c : cells) x->add_cells(c);
  };
  auto cols = [&](std::initializer_list<const char*> c) {
    for (const char* x : c) t->add_columns(x);
  };
  if (what == "identities") {
    cols({"ID", "LABELS"});
    for (const auto& [id, l] : agent_->identities().all()) row({std::to_string(id), l.ToString()});
  } else if (what == "ipcache") {
    cols({"PREFIX", "IDENTITY", "TUNNEL ENDPOINT", "SOURCE CLUSTER"});
    for (const auto& [p, e] : agent_->ipcache().entries()) {
      row({p.ToString(), std::to_string(e.id), e.tunnel_endpoint ? e.tunnel_endpoint->ToString() : "",
           std::to_string(e.source_cluster)});
    }
  } else if (what == "endpoints") {
    cols({"ENDPOINT", "IDENTITY", "ADDRESSES", "PORT", "MAC", "LABELS"});
    for (const auto& [k, e] : agent_->endpoints()) {
      std::string addrs;
      for (const auto& a : e.addrs) StrAppend(&addrs, addrs.empty() ? "" : ",", a.ToString());
      char mac[RTE_ETHER_ADDR_FMT_SIZE];
      rte_ether_format_addr(mac, sizeof mac, &e.mac);
      const auto* l = agent_->identities().Find(e.identity);
      row({k, std::to_string(e.identity), addrs, std::to_string(e.port_index), mac, l ? l->ToString() : ""});
    }
  } else if (what == "services") {
    cols({"FRONTEND", "PROTOCOL", "BACKENDS"});
    for (const auto& s : agent_->service_specs()) {
      std::string b;
      for (const auto& x : s.backends) StrAppend(&b, b.empty() ? "" : ", ", x.addr.ToString(), ":", x.port);
      row({StrCat(s.vip.ToString(), ":", s.port), s.proto == 17 ? "UDP" : s.proto == 132 ? "SCTP" : "TCP",
           b.empty() ? "(none)" : b});
    }
  } else if (what == "policies") {
    cols({"KIND", "NAMESPACE", "NAME", "RULES", "FILE"});
    for (const auto& p : agent_->policies()) {
      row({std::string(classifier::PolicyKindName(p.kind)), p.ns, p.name, std::to_string(p.rules.size()), p.file});
    }
  } else {
    r.set_ok(false);
    r.clear_tables();
    r.set_error(StrCat("get: unknown resource \"", what, "\" (identities, ipcache, endpoints, services, policies)"));
  }
  return r;
}

namespace {
// The checksum offloads a port runs with (dataplane::PortOffload).
std::string OffloadNames(uint8_t o) {
  std::string s;
  if (o & dataplane::kRxIpv4Cksum) s += "rx-ipv4";
  if (o & dataplane::kTxIpv4Cksum) s += s.empty() ? "tx-ipv4" : ",tx-ipv4";
  return s.empty() ? "none" : s;
}
}  // namespace

adm::Response Daemon::Stats() {
  adm::Response r;
  r.set_ok(true);
  r.set_done(true);
  auto* ports = r.add_tables();
  ports->set_title("ports");
  for (const char* c : {"PORT", "DEVICE", "ROLE", "RX", "TX", "RX MISSED", "RX ERRORS", "TX ERRORS", "CHECKSUM OFFLOAD"}) ports->add_columns(c);
  for (size_t i = 0; i < inst_->num_ports(); ++i) {
    rte_eth_stats st{};
    rte_eth_stats_get(inst_->port_id(i), &st);
    auto* row = ports->add_rows();
    const char* role = c_.ports[i].role == dataplane::PortRole::kFabric ? "fabric"
                       : c_.ports[i].role == dataplane::PortRole::kUplink ? "uplink" : "endpoint";
    for (const auto& s : {std::to_string(i), c_.ports[i].device, std::string(role), std::to_string(st.ipackets),
                          std::to_string(st.opackets), std::to_string(st.imissed), std::to_string(st.ierrors),
                          std::to_string(st.oerrors), OffloadNames(inst_->port_offloads(i))}) {
      row->add_cells(s);
    }
  }
  auto* lc = r.add_tables();
  lc->set_title("lcores");
  for (const char* c : {"WORKER", "LCORE", "RX", "TX", "FORWARDED", "NEW CONNECTIONS", "REPLIES", "AUDITED", "ENCAPSULATED", "EVENTS LOST", "CACHED VERDICTS", "ACL CACHE HITS", "BUSY CYCLES/PACKET", "PACKETS/BUSY POLL"}) {
    lc->add_columns(c);
  }
  for (size_t w = 0; w < inst_->num_workers(); ++w) {
    const auto& k = inst_->pipeline(w).counters();
    auto* row = lc->add_rows();
    for (const auto& s : {std::to_string(w), std::to_string(w < c_.lcores.size() ? c_.lcores[w] : 0),
                          std::to_string(k.rx), std::to_string(k.tx), std::to_string(k.forwarded),
                          std::to_string(k.ct_new), std::to_string(k.ct_replies), std::to_string(k.audited),
                          std::to_string(k.encapsulated), std::to_string(k.events_lost),
                          std::to_string(k.verdicts_cached), std::to_string(k.acl_cache_hits),
                          k.rx ? fmt::format("{:.1f}", double(k.busy_cycles) / double(k.rx)) : "-",
                          k.busy_polls ? fmt::format("{:.1f}", double(k.rx) / double(k.busy_polls)) : "-"}) {
      row->add_cells(s);
    }
  }
  auto* dr = r.add_tables();
  dr->set_title("drops");
  for (const char* c : {"REASON", "CODE", "PORT", "COUNT"}) dr->add_columns(c);
  for (auto reason : dataplane::AllDropReasons()) {
    for (size_t p = 0; p < inst_->num_ports(); ++p) {
      uint64_t n = inst_->Dropped(reason, p);
      if (n == 0) continue;
      auto* row = dr->add_rows();
      for (const auto& s : {std::string(dataplane::DropReasonEnumName(reason)), std::to_string(int(reason)),
                            std::to_string(p), std::to_string(n)}) {
        row->add_cells(s);
      }
    }
  }
  return r;
}

adm::Response Daemon::Status() {
  adm::Response r;
  r.set_ok(true);
  r.set_done(true);
  auto c = agent_->Counts();
  auto* t = r.add_tables();
  t->set_title("status");
  t->add_columns("KEY");
  t->add_columns("VALUE");
  auto kv = [&](const std::string& k, const std::string& v) {
    auto* row = t->add_rows();
    row->add_cells(k);
    row->add_cells(v);
  };
  kv("cluster", StrCat(c_.cluster, " (id ", c_.cluster_id, ")"));
  kv("feed connections", std::to_string(feeds_));
  kv("feed synced", c.synced ? "yes" : "no");
  kv("revision", std::to_string(c.revision));
  kv("snapshot generation", std::to_string(c.generation));
  kv("updates applied in place", std::to_string(c.in_place));
  kv("snapshot age", last_commit_ns_ ? fmt::format("{:.1f} s", double(NowNs() - last_commit_ns_) / 1e9) : "never");
  kv("identities", std::to_string(c.identities));
  kv("ipcache entries", std::to_string(c.ipcache));
  kv("endpoints", std::to_string(c.endpoints));
  kv("policies", std::to_string(c.policies));
  kv("service frontends", std::to_string(c.frontends));
  kv("workers", std::to_string(inst_->num_workers()));
  kv("commit errors", std::to_string(commit_errors_));
  if (const auto* acl = agent_->acl()) {
    kv("acl", StrCat(acl->num_rules(), " rules in ", acl->num_partitions(), " partitions, ",
                     acl->num_contexts(), " contexts (", consolidations_, " consolidations)"));
  }
  kv("observer responses dropped", std::to_string(dropped_admin_));
  if (!last_commit_error_.empty()) kv("last commit error", last_commit_error_);
  return r;
}

adm::Response Daemon::Explain(const adm::Explain& e) {
  adm::Response r;
  r.set_done(true);
  auto ep = agent_->endpoints().find(e.subject().find('/') == std::string::npos ? "default/" + e.subject() : e.subject());
  if (ep == agent_->endpoints().end()) {
    r.set_error(StrCat("explain: \"", e.subject(), "\" is not a local endpoint (ns/name)"));
    return r;
  }
  classifier::FlowQuery q;
  q.dir = e.direction() == "egress" ? classifier::Direction::kEgress : classifier::Direction::kIngress;
  q.subject = *agent_->identities().Find(ep->second.identity);
  q.subject_named_ports = ep->second.named_ports;
  uint32_t peer = e.peer_identity();
  if (!e.peer_ip().empty()) {
    auto a = identity::IpAddr::Parse(e.peer_ip());
    if (!a.ok()) {
      r.set_error(StrCat("explain: ", a.status().message()));
      return r;
    }
    peer = agent_->ipcache().Lookup(*a).id;
  }
  const auto* pl = agent_->identities().Find(peer);
  if (pl == nullptr) {
    r.set_error(StrCat("explain: identity ", peer, " is not known"));
    return r;
  }
  q.peer_id = peer;
  q.peer = *pl;
  std::string p = e.protocol().empty() ? "TCP" : e.protocol();
  q.proto = p == "UDP" ? 17 : p == "SCTP" ? 132 : p == "ICMP" ? 1 : p == "ICMPv6" ? 58 : 6;
  q.port = uint16_t(e.port());
  auto x = classifier::Explain(agent_->policies(), agent_->options(), q, agent_->ipcache().AllNamedPorts());
  r.set_ok(true);
  r.set_message(StrCat("subject ", ep->first, " (identity ", ep->second.identity, "), peer identity ", peer,
                       " [", pl->ToString(), "]\n", x.ToString()));
  return r;
}

std::string Daemon::Metrics() {
  std::string o;
  auto c = agent_->Counts();
  auto gauge = [&](const char* name, const char* help, double v) {
    StrAppend(&o, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " ", fmt::format("{}", v), "\n");
  };
  gauge("meshgate_identities", "Identities known to this instance.", double(c.identities));
  gauge("meshgate_ipcache_entries", "ipcache entries.", double(c.ipcache));
  gauge("meshgate_endpoints", "Local endpoints.", double(c.endpoints));
  gauge("meshgate_services", "Service frontends in the published snapshot.", double(c.frontends));
  gauge("meshgate_policies", "Policies applied.", double(c.policies));
  gauge("meshgate_tracked_connections", "Connection records in use (expired ones until collected).", double(inst_->conntrack().size()));
  gauge("meshgate_affinity_entries", "sessionAffinity ClientIP entries (expired ones until collected).", double(inst_->affinity().size()));
  StrAppend(&o, "# HELP meshgate_collected_total Expired entries removed by the control thread, by table.\n",
            "# TYPE meshgate_collected_total counter\n",
            "meshgate_collected_total{table=\"conntrack\"} ", inst_->collected_connections(), "\n",
            "meshgate_collected_total{table=\"affinity\"} ", inst_->collected_affinities(), "\n");
  gauge("meshgate_feed_connections", "Mesh feed connections.", double(feeds_));
  gauge("meshgate_snapshot_generation", "Generation of the published snapshot.", double(c.generation));
  StrAppend(&o, "# HELP meshgate_observer_drops_total Flow responses not queued for observers that do not read.\n",
            "# TYPE meshgate_observer_drops_total counter\nmeshgate_observer_drops_total ", dropped_admin_, "\n");
  StrAppend(&o, "# HELP meshgate_drops_total Packets dropped, by reason and input port.\n# TYPE meshgate_drops_total counter\n");
  for (auto reason : dataplane::AllDropReasons()) {
    for (size_t p = 0; p < inst_->num_ports(); ++p) {
      uint64_t n = inst_->Dropped(reason, p);
      StrAppend(&o, "meshgate_drops_total{reason=\"", dataplane::DropReasonEnumName(reason), "\",code=\"",
                int(reason), "\",port=\"", p, "\"} ", n, "\n");
    }
  }
  // Per worker lcore, one family at a time (the text format groups a
  // family's samples under its HELP and TYPE).
  using LcoreCounter = uint64_t dataplane::PipelineCounters::*;
  const std::tuple<const char*, const char*, LcoreCounter> lcore_families[] = {
      {"meshgate_forwarded_total", "Packets forwarded, by worker lcore.",
       &dataplane::PipelineCounters::forwarded},
      {"meshgate_rx_total", "Packets received, by worker lcore.", &dataplane::PipelineCounters::rx},
      {"meshgate_busy_polls_total", "Poll iterations that received packets, by worker lcore.",
       &dataplane::PipelineCounters::busy_polls},
      {"meshgate_busy_cycles_total",
       "TSC cycles of the poll iterations that received packets (RX to TX), by worker lcore.",
       &dataplane::PipelineCounters::busy_cycles}};
  for (const auto& [name, help, field] : lcore_families) {
    StrAppend(&o, "# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n");
    for (size_t w = 0; w < inst_->num_workers(); ++w) {
      unsigned lc = w < c_.lcores.size() ? c_.lcores[w] : 0;
      StrAppend(&o, name, "{lcore=\"", lc, "\"} ", inst_->pipeline(w).counters().*field, "\n");
    }
  }
  StrAppend(&o, "# HELP meshgate_tsc_hz TSC cycles per second (meshgate_busy_cycles_total's unit).\n",
            "# TYPE meshgate_tsc_hz gauge\nmeshgate_tsc_hz ", rte_get_tsc_hz(), "\n");
  StrAppend(&o, "# HELP meshgate_port_packets_total Packets per port and direction.\n# TYPE meshgate_port_packets_total counter\n");
  for (size_t i = 0; i < inst_->num_ports(); ++i) {
    rte_eth_stats st{};
    rte_eth_stats_get(inst_->port_id(i), &st);
    StrAppend(&o, "meshgate_port_packets_total{port=\"", i, "\",direction=\"rx\"} ", st.ipackets, "\n");
    StrAppend(&o, "meshgate_port_packets_total{port=\"", i, "\",direction=\"tx\"} ", st.opackets, "\n");
  }
  // Snapshot build + publish times.
  static const double kBuckets[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};
  StrAppend(&o, "# HELP meshgate_snapshot_publish_ms Snapshot compile, build and publish time.\n# TYPE meshgate_snapshot_publish_ms histogram\n");
  double sum = 0;
  for (double v : commit_ms_) sum += v;
  for (double b : kBuckets) {
    size_t n = 0;
    for (double v : commit_ms_) n += v <= b;
    StrAppend(&o, "meshgate_snapshot_publish_ms_bucket{le=\"", b, "\"} ", n, "\n");
  }
  StrAppend(&o, "meshgate_snapshot_publish_ms_bucket{le=\"+Inf\"} ", commit_ms_.size(), "\n");
  StrAppend(&o, "meshgate_snapshot_publish_ms_sum ", fmt::format("{}", sum), "\n");
  StrAppend(&o, "meshgate_snapshot_publish_ms_count ", commit_ms_.size(), "\n");
  return o;
}

std::string Daemon::TelemetryStatus() {
  auto c = agent_->Counts();
  return StrCat(c_.cluster, " ", c.generation, " ", c.identities, " ", c.endpoints);
}

void Daemon::Handle(const std::shared_ptr<AdminSession>& s, const adm::Request& req) {
  adm::Response r;
  switch (req.body_case()) {
    case adm::Request::kApply: {
      v1::Update u;
      u.mutable_manifest_apply()->set_yaml(req.apply().yaml());
      u.mutable_manifest_apply()->set_file(req.apply().file().empty() ? "<meshgatectl>" : req.apply().file());
      auto st = agent_->Apply(u);
      if (st.ok()) st = Commit();
      if (st.ok()) {
        r.set_ok(true);
        r.set_message(StrCat("applied to ", c_.cluster, " (snapshot ", agent_->Counts().generation, ")"));
      } else {
        r.set_error(std::string(st.message()));
      }
      r.set_done(true);
      break;
    }
    case adm::Request::kDelete: {
      v1::Update u;
      auto* d = u.mutable_manifest_delete();
      d->set_kind(req.delete_().kind());
      d->set_namespace_(req.delete_().namespace_().empty() ? "default" : req.delete_().namespace_());
      d->set_name(req.delete_().name());
      auto st = agent_->Apply(u);
      if (st.ok()) st = Commit();
      if (st.ok()) {
        r.set_ok(true);
        r.set_message(StrCat(d->kind(), " ", d->namespace_(), "/", d->name(), " deleted"));
      } else {
        r.set_error(std::string(st.message()));
      }
      r.set_done(true);
      break;
    }
    case adm::Request::kGet: r = Get(req.get().what()); break;
    case adm::Request::kStats: r = Stats(); break;
    case adm::Request::kStatus: r = Status(); break;
    case adm::Request::kExplain: r = Explain(req.explain()); break;
    case adm::Request::kObserve: {
      DrainEvents();  // what is in the ring now counts as buffered
      r.set_ok(true);
      std::vector<adm::Flow> v;
      for (const auto& f : flows_) {
        adm::Flow x = ToFlow(f);
        if (Matches(req.observe(), x)) v.push_back(std::move(x));
      }
      size_t from = req.observe().last() && v.size() > req.observe().last() ? v.size() - req.observe().last() : 0;
      for (size_t i = from; i < v.size(); ++i) *r.add_flows() = std::move(v[i]);
      if (req.observe().follow()) {
        observers_.push_back(s);
        s->Send(r);
        return;
      }
      r.set_done(true);
      break;
    }
    case adm::Request::kEndpoint:
      r.set_error("endpoint changes go to the mesh controller (meshgate mesh), not to a cluster's daemon");
      r.set_done(true);
      break;
    case adm::Request::BODY_NOT_SET:
      r.set_error("unknown request (a newer meshgatectl?)");
      r.set_done(true);
      break;
  }
  s->Send(r);
}

int TelemetryCb(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (Daemon::telemetry_ == nullptr) return 0;
  std::string s = Daemon::telemetry_->TelemetryStatus();
  rte_tel_data_add_dict_string(d, "status", s.c_str());
  return 0;
}

int Daemon::Run() {
  dataplane::EalOptions eal;
  eal.name = "meshgate-" + c_.cluster;
  std::string lcores = "0";
  for (unsigned l : c_.lcores) StrAppend(&lcores, ",", l);
  bool mapped = false;
  for (int cpu : c_.lcore_cpus) mapped |= cpu >= 0;
  if (mapped) {  // EAL --lcores: lcore@cpu for each
    std::string map = "0@0";
    for (size_t i = 0; i < c_.lcores.size(); ++i) {
      int cpu = i < c_.lcore_cpus.size() && c_.lcore_cpus[i] >= 0 ? c_.lcore_cpus[i] : int(c_.lcores[i]);
      StrAppend(&map, ",", c_.lcores[i], "@", cpu);
    }
    eal.extra = {"--lcores", map, "--log-level=*:warning"};
  } else {
    eal.extra = {"-l", lcores, "--log-level=*:warning"};
  }
  bool pci = false;  // a port named by PCI address ("0000:01:00.0")
  for (const auto& p : c_.ports) pci = pci || (p.device.size() >= 7 && p.device[4] == ':' && p.device[7] == ':');
  if (!pci) eal.extra.push_back("--no-pci");
  eal.extra.insert(eal.extra.end(), c_.eal.begin(), c_.eal.end());
  eal.secondaries = c_.capture;
  if (!dataplane::HugepagesAvailable()) {
    Log("no hugepages reserved (or no hugetlbfs mounted): running with --no-huge; reserve them with "
        "'echo 512 > /proc/sys/vm/nr_hugepages' for production");
  }
  if (auto st = dataplane::InitEal(eal); !st.ok()) {
    Log(StrCat("EAL start failed: ", st.message()));
    return 1;
  }
  if (auto st = dataplane::RegisterPacketMeta(); !st.ok()) {
    Log(std::string(st.message()));
    return 1;
  }
  if (c_.capture) {
    if (rte_pdump_init() != 0) {
      Log("rte_pdump_init failed: packet capture unavailable");
      return 1;
    }
    Log(StrCat("packet capture on: dpdk-dumpcap --file-prefix ", eal.name, "-", getpid(), " -i <port>"));
  }
  dataplane::InstanceConfig ic;
  ic.name = "mg" + std::to_string(c_.cluster_id);
  for (const auto& p : c_.ports) ic.ports.push_back({p.device, p.role});
  ic.worker_lcores = c_.lcores;
  ic.conntrack_size = c_.conntrack_size;
  ic.idle_sleep_us = c_.idle_sleep_us;
  ic.ipcache = {1 << 16, 1 << 10};
  auto inst = dataplane::Instance::Create(ic);
  if (!inst.ok()) {
    Log(StrCat("cannot start the dataplane: ", inst.status().message()));
    return 1;
  }
  inst_ = std::move(*inst);
  AgentConfig ac;
  ac.cluster = c_.cluster;
  ac.cluster_id = c_.cluster_id;
  ac.router_mac = c_.router_mac;
  ac.encap = c_.encap;
  ac.node_v4 = c_.node_v4;
  ac.node_mac = c_.node_mac;
  ac.uplink_mac = c_.uplink_mac;
  ac.gateway_mac = c_.gateway_mac;
  for (size_t i = 0; i < c_.ports.size(); ++i) {
    if (c_.ports[i].role == dataplane::PortRole::kFabric) ac.fabric_port = int(i);
    if (c_.ports[i].role == dataplane::PortRole::kUplink) ac.uplink_port = int(i);
  }
  agent_ = std::make_unique<Agent>(ac, *inst_);
  {  // The configured options, through the same action as the feed's.
    v1::Update u;
    auto* cc = u.mutable_cluster_config();
    cc->set_cluster(c_.cluster);
    cc->set_cluster_id(c_.cluster_id);
    cc->set_policy_default_local_cluster(c_.options.policy_default_local_cluster);
    cc->set_policy_audit_mode(c_.options.policy_audit_mode);
    cc->set_enforcement_mode(c_.options.enforcement_mode);
    if (auto st = agent_->Apply(u); !st.ok()) {
      Log(std::string(st.message()));
      return 1;
    }
  }
  if (auto st = AttachConfigEndpoints(); !st.ok()) {
    Log(StrCat("config endpoints: ", st.message()));
    return 1;
  }
  if (auto st = Commit(); !st.ok()) return 1;
  if (auto st = inst_->Start(); !st.ok()) {
    Log(StrCat("cannot start the workers: ", st.message()));
    return 1;
  }
  if (auto st = Listen(); !st.ok()) {
    Log(std::string(st.message()));
    inst_->Stop();
    return 1;
  }
  telemetry_ = this;
  rte_telemetry_register_cmd("/meshgate/status", TelemetryCb,
                             "meshgate: cluster, snapshot generation, identities, endpoints");
  commit_timer_ = std::make_unique<asio::steady_timer>(io_);
  events_timer_ = std::make_unique<asio::steady_timer>(io_);
  maintain_timer_ = std::make_unique<asio::steady_timer>(io_);
  consolidate_timer_ = std::make_unique<asio::steady_timer>(io_);
  Accept<unix_socket::acceptor, FeedSession<unix_socket::socket>>(*feed_acc_, c_.max_frame);
  if (tcp_acc_) Accept<asio::ip::tcp::acceptor, FeedSession<asio::ip::tcp::socket>>(*tcp_acc_, c_.max_frame);
  AcceptAdmin();
  if (metrics_acc_) AcceptMetrics();
  DrainEvents();
  Maintain();
  signals_.async_wait([this](boost::system::error_code, int sig) {
    Log(StrCat("signal ", sig, ": stopping"));
    io_.stop();
  });
  std::string ports;
  for (size_t i = 0; i < c_.ports.size(); ++i) StrAppend(&ports, i ? ", " : "", c_.ports[i].device);
  Log(StrCat("running: ", inst_->num_ports(), " ports (", ports, "), ", inst_->num_workers(),
             " worker(s) on lcores ", lcores.substr(2), "; feed ", c_.feed_socket, ", admin ",
             c_.admin_socket, c_.metrics.empty() ? "" : ", metrics http://" + c_.metrics + "/metrics"));
  io_.run();
  telemetry_ = nullptr;
  inst_->Stop();
  if (c_.capture) rte_pdump_uninit();
  ::unlink(c_.feed_socket.c_str());
  ::unlink(c_.admin_socket.c_str());
  agent_.reset();
  inst_.reset();
  Log("stopped");
  return 0;
}

}  // namespace

int RunDaemon(const DaemonConfig& c) {
  Daemon d(c);
  return d.Run();
}

}  // namespace meshgate::control
