#include "control/mesh_process.h"

#include <rte_ether.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio.hpp>
#include <fmt/core.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "control/feed.h"
#include "control/mesh_controller.h"
#include "control/proto/admin.pb.h"
#include "control/scenario.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol;
namespace adm = meshgate::admin::v1;

namespace {

void Log(const std::string& m) { fmt::print(stderr, "meshgate[mesh]: {}\n", m); }

class Mesh {
 public:
  Mesh(MeshController& ctl, std::map<std::string, std::string> feeds, std::string admin)
      : ctl_(ctl), feeds_(std::move(feeds)), admin_path_(std::move(admin)), signals_(io_, SIGINT, SIGTERM) {}
  int Run();

 private:
  struct Peer {
    std::string cluster, path;
    std::unique_ptr<unix_socket::socket> s;
    bool connected = false, writing = false;
    std::string pending, inflight;
    FrameDecoder replies;
    std::array<char, 4096> buf;
    std::unique_ptr<asio::steady_timer> retry;
  };
  void Connect(Peer& p);
  void Push();  // frames to every connected peer
  void Write(Peer& p);
  void Read(Peer& p);
  void Lost(Peer& p, const std::string& why);
  void AcceptAdmin();
  adm::Response Handle(const adm::Request& r);

  MeshController& ctl_;
  std::map<std::string, std::string> feeds_;
  std::string admin_path_;
  asio::io_context io_;
  asio::signal_set signals_;
  std::map<std::string, Peer> peers_;
  std::unique_ptr<unix_socket::acceptor> admin_;
};

void Mesh::Connect(Peer& p) {
  p.s = std::make_unique<unix_socket::socket>(io_);
  p.s->async_connect(unix_socket::endpoint(p.path), [this, &p](boost::system::error_code ec) {
    if (ec) {
      p.retry->expires_after(std::chrono::milliseconds(200));
      p.retry->async_wait([this, &p](boost::system::error_code e) {
        if (!e) Connect(p);
      });
      return;
    }
    p.connected = true;
    p.replies = FrameDecoder();
    ctl_.Reset(p.cluster);  // a new connection gets hello and a full sync
    p.pending = ctl_.Frames(p.cluster);
    Log(StrCat("feed: connected to ", p.cluster, " (", p.path, "), full sync of ", p.pending.size(), " bytes"));
    Write(p);
    Read(p);
  });
}

void Mesh::Write(Peer& p) {
  if (!p.connected || p.writing || p.pending.empty()) return;
  p.writing = true;
  p.inflight = std::move(p.pending);
  p.pending.clear();
  asio::async_write(*p.s, asio::buffer(p.inflight), [this, &p](boost::system::error_code ec, size_t) {
    p.writing = false;
    if (ec) return Lost(p, ec.message());
    Write(p);
  });
}

void Mesh::Read(Peer& p) {
  p.s->async_read_some(asio::buffer(p.buf), [this, &p](boost::system::error_code ec, size_t n) {
    if (ec) return Lost(p, ec == asio::error::eof ? "closed by the daemon" : ec.message());
    p.replies.Feed(std::string_view(p.buf.data(), n));
    mesh::v1::Reply r;
    while (true) {
      auto more = p.replies.Next(r);
      if (!more.ok() || !*more) break;
      if (!r.ok()) Log(StrCat("feed: ", p.cluster, " refused revision ", r.revision(), ": ", r.error()));
    }
    Read(p);
  });
}

void Mesh::Lost(Peer& p, const std::string& why) {
  if (!p.connected) return;
  p.connected = false;
  boost::system::error_code ignored;
  p.s->close(ignored);
  Log(StrCat("feed: lost ", p.cluster, " (", why, "); reconnecting"));
  p.retry->expires_after(std::chrono::milliseconds(200));
  p.retry->async_wait([this, &p](boost::system::error_code e) {
    if (!e) Connect(p);
  });
}

void Mesh::Push() {
  for (auto& [name, p] : peers_) {
    if (!p.connected) continue;  // it gets a full sync when it comes back
    p.pending += ctl_.Frames(name);
    Write(p);
  }
}

adm::Response Mesh::Handle(const adm::Request& req) {
  adm::Response r;
  r.set_done(true);
  absl::Status st;
  switch (req.body_case()) {
    case adm::Request::kApply: {
      std::string cl = req.apply().cluster();
      if (cl.empty()) {
        r.set_error("apply: --cluster NAME is required with the mesh controller");
        return r;
      }
      st = ctl_.ApplyManifest(cl, req.apply().yaml(), req.apply().file());
      if (st.ok()) r.set_message(StrCat("applied to ", cl));
      break;
    }
    case adm::Request::kDelete: {
      const auto& d = req.delete_();
      st = ctl_.DeleteManifest(d.cluster(), d.kind(), d.namespace_().empty() ? "default" : d.namespace_(), d.name());
      if (st.ok()) r.set_message(StrCat(d.kind(), " ", d.name(), " deleted in ", d.cluster()));
      break;
    }
    case adm::Request::kEndpoint: {
      const auto& e = req.endpoint();
      if (e.remove()) {
        st = ctl_.RemoveEndpoint(e.key());
        if (st.ok()) r.set_message(StrCat("endpoint ", e.key(), " removed"));
      } else {
        // The same keys as a scenario's endpoints list, plus port and mac.
        try {
          YAML::Node n = YAML::Load(e.yaml());
          if (n.IsMap()) n = n["endpoints"];
          for (const auto& x : n) {
            ScenarioEndpoint se;
            se.name = x["name"].as<std::string>();
            se.cluster = x["cluster"].as<std::string>();
            se.ns = x["namespace"].as<std::string>("default");
            se.labels = x["labels"].as<std::map<std::string, std::string>>(std::map<std::string, std::string>{});
            if (x["ipv4"]) se.ipv4 = *identity::IpAddr::Parse(x["ipv4"].as<std::string>());
            if (x["ipv6"]) se.ipv6 = *identity::IpAddr::Parse(x["ipv6"].as<std::string>());
            rte_ether_addr mac{};
            if (rte_ether_unformat_addr(x["mac"].as<std::string>("").c_str(), &mac) != 0) {
              st = absl::InvalidArgumentError(StrCat("endpoint ", se.Key(), ": mac is required"));
              break;
            }
            st = ctl_.AddEndpoint(se, uint16_t(x["port"].as<unsigned>(0)), mac);
            if (!st.ok()) break;
          }
        } catch (const std::exception& ex) {
          st = absl::InvalidArgumentError(StrCat("endpoint add: ", ex.what()));
        }
        if (st.ok()) r.set_message("endpoints added");
      }
      break;
    }
    case adm::Request::kGet: {
      auto* t = r.add_tables();
      t->set_title(req.get().what());
      if (req.get().what() == "endpoints") {
        for (const char* c : {"ENDPOINT", "IDENTITY", "ADDRESSES", "PORT"}) t->add_columns(c);
        for (const auto& [k, e] : ctl_.endpoints()) {
          auto* row = t->add_rows();
          std::string a;
          for (const auto& x : {e.spec.ipv4, e.spec.ipv6}) {
            if (x) StrAppend(&a, a.empty() ? "" : ",", x->ToString());
          }
          for (const auto& c : {k, std::to_string(e.identity), a, std::to_string(e.port)}) row->add_cells(c);
        }
      } else if (req.get().what() == "services") {
        for (const char* c : {"CLUSTER", "SERVICE", "GLOBAL", "SHARED", "AFFINITY", "FRONTENDS"}) t->add_columns(c);
        for (const auto& c : ctl_.clusters()) {
          for (const auto& s : ctl_.services(c.name)) {
            std::string f;
            for (const auto& x : s.frontends) StrAppend(&f, f.empty() ? "" : ",", x.ToString());
            auto* row = t->add_rows();
            for (const auto& v : {c.name, s.ns + "/" + s.name, std::string(s.global.global ? "true" : "false"),
                                  std::string(s.global.shared ? "true" : "false"),
                                  std::string(lb::AffinityName(s.global.affinity)), f}) {
              row->add_cells(v);
            }
          }
        }
      } else {
        r.clear_tables();
        st = absl::InvalidArgumentError("the mesh controller has endpoints and services");
      }
      break;
    }
    case adm::Request::kStatus: {
      auto* t = r.add_tables();
      t->set_title("status");
      t->add_columns("CLUSTER");
      t->add_columns("FEED");
      t->add_columns("CONNECTED");
      for (const auto& [n, p] : peers_) {
        auto* row = t->add_rows();
        for (const auto& v : {n, p.path, std::string(p.connected ? "yes" : "no")}) row->add_cells(v);
      }
      break;
    }
    default:
      st = absl::InvalidArgumentError("the mesh controller takes apply, delete, endpoint, get and status");
  }
  if (!st.ok()) {
    r.set_ok(false);
    r.set_error(std::string(st.message()));
    return r;
  }
  r.set_ok(true);
  Push();
  return r;
}

void Mesh::AcceptAdmin() {
  admin_->async_accept([this](boost::system::error_code ec, unix_socket::socket sock) {
    if (ec) return;
    struct Conn {
      unix_socket::socket s;
      FrameDecoder dec{16u << 20};
      std::array<char, 8192> buf;
      std::string out;
    };
    auto c = std::make_shared<Conn>(Conn{std::move(sock), FrameDecoder(16u << 20), {}, {}});
    auto read = std::make_shared<std::function<void()>>();
    *read = [this, c, read]() {
      c->s.async_read_some(asio::buffer(c->buf), [this, c, read](boost::system::error_code ec, size_t n) {
        if (ec) return;
        c->dec.Feed(std::string_view(c->buf.data(), n));
        adm::Request req;
        auto more = c->dec.Next(req);
        adm::Response r;
        if (!more.ok()) {
          r.set_error(std::string(more.status().message()));
          r.set_done(true);
        } else if (!*more) {
          (*read)();
          return;
        } else {
          r = Handle(req);
        }
        c->out = EncodeFrame(r);
        asio::async_write(c->s, asio::buffer(c->out), [c](boost::system::error_code, size_t) {});
      });
    };
    (*read)();
    AcceptAdmin();
  });
}

int Mesh::Run() {
  if (::access(admin_path_.c_str(), F_OK) == 0) ::unlink(admin_path_.c_str());
  boost::system::error_code ec;
  admin_ = std::make_unique<unix_socket::acceptor>(io_);
  admin_->open(unix_socket(), ec);
  if (!ec) admin_->bind(unix_socket::endpoint(admin_path_), ec);
  if (!ec) admin_->listen(16, ec);
  if (ec) {
    Log(StrCat(admin_path_, ": ", ec.message()));
    return 1;
  }
  ::chmod(admin_path_.c_str(), 0600);
  for (const auto& [cluster, path] : feeds_) {
    Peer& p = peers_[cluster];
    p.cluster = cluster;
    p.path = path;
    p.retry = std::make_unique<asio::steady_timer>(io_);
    Connect(p);
  }
  AcceptAdmin();
  signals_.async_wait([this](boost::system::error_code, int) { io_.stop(); });
  Log(StrCat("feeding ", feeds_.size(), " clusters, ", ctl_.endpoints().size(), " endpoints; admin ", admin_path_));
  io_.run();
  ::unlink(admin_path_.c_str());
  Log("stopped");
  return 0;
}

}  // namespace

int RunMesh(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    Log(StrCat(path, ": cannot read"));
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  Scenario s;
  std::vector<Diagnostic> diags, warnings;
  if (!ParseScenario(ss.str(), path, s, diags, warnings)) {
    for (const auto& d : diags) fmt::print(stderr, "{}\n", d.ToString());
    return 2;
  }
  MeshController ctl(s.clusters, s.namespaces);
  std::map<std::string, std::string> feeds;
  std::string admin = "/run/meshgate/mesh.sock";
  try {
    YAML::Node root = YAML::Load(ss.str());
    if (root["admin"]) admin = root["admin"].as<std::string>();
    for (const auto& c : root["clusters"]) {
      if (!c["feed"]) {
        fmt::print(stderr, "{}:{}: cluster {}: feed (the daemon's feed socket) is required\n", path,
                   c.Mark().line + 1, c["name"].as<std::string>(""));
        return 2;
      }
      feeds[c["name"].as<std::string>()] = c["feed"].as<std::string>();
    }
    auto eps = root["endpoints"];
    for (size_t i = 0; i < s.endpoints.size(); ++i) {
      rte_ether_addr mac{};
      std::string m = eps[i]["mac"].as<std::string>("");
      if (rte_ether_unformat_addr(m.c_str(), &mac) != 0 || !eps[i]["port"]) {
        fmt::print(stderr, "{}:{}: endpoint {}: port (index on its daemon) and mac are required\n", path,
                   eps[i].Mark().line + 1, s.endpoints[i].Key());
        return 2;
      }
      if (auto st = ctl.AddEndpoint(s.endpoints[i], uint16_t(eps[i]["port"].as<unsigned>()), mac); !st.ok()) {
        fmt::print(stderr, "{}: {}\n", path, std::string(st.message()));
        return 2;
      }
    }
  } catch (const YAML::Exception& e) {
    fmt::print(stderr, "{}:{}: {}\n", path, e.mark.line + 1, e.msg);
    return 2;
  }
  for (const auto& m : s.manifests) {
    if (auto st = ctl.ApplyManifest(m.cluster, m.yaml, path, m.line_offset); !st.ok()) {
      fmt::print(stderr, "{}\n", std::string(st.message()));
      return 2;
    }
  }
  Mesh mesh(ctl, feeds, admin);
  return mesh.Run();
}

}  // namespace meshgate::control
