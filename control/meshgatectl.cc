// meshgatectl: the operator's CLI for a meshgate daemon (or the mesh
// controller), over the admin socket (control/proto/admin.proto). Shaped like
// the cilium and hubble CLIs. See `meshgatectl --help` and docs/daemon.md.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "control/feed.h"
#include "control/json_quote.h"
#include "control/proto/admin.pb.h"

namespace adm = meshgate::admin::v1;
using meshgate::control::JsonQuote;

namespace {

constexpr const char* kUsage = R"(meshgatectl: talk to a meshgate daemon (or the mesh controller)

Usage: meshgatectl [-s SOCKET] COMMAND [options]
  -s, --socket PATH     the admin socket (default $MESHGATE_SOCKET, else
                        /run/meshgate/admin.sock)

Commands:
  apply -f FILE|- [--cluster NAME]
        Create or replace CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
        NetworkPolicy and Service objects (several documents). --cluster
        picks the cluster when talking to the mesh controller.
  delete KIND NAME [-n NAMESPACE] [--cluster NAME]
  get identities|ipcache|endpoints|services|policies [-o table|json|yaml]
  observe [--follow|-f] [--last N] [--verdict FORWARDED|DROPPED|AUDIT]
          [--from-label L]... [--to-label L]... [--from-ip IP] [--to-ip IP]
          [--port N] [--protocol P] [--since DURATION (e.g. 30s, 5m)]
          [-o compact|json]
        Flow events, like `hubble observe`.
  explain --subject NS/NAME [--direction ingress|egress]
          (--peer-ip ADDR | --peer-identity ID) [--protocol P] [--port N]
        The verdict for a flow at a local endpoint and the rule that decides.
  stats [-o table|json|yaml]      per port, per lcore, per drop reason
  status [-o table|json|yaml]     feed connection and sync, revision, snapshot age
  endpoint remove CLUSTER/NAME    (mesh controller) an endpoint goes away
  endpoint add -f FILE            (mesh controller) endpoints as in scenario files

Exit status: 0 on success, 1 when the daemon refused, 2 on usage or
connection errors.
)";

int Usage(int code) {
  std::fputs(kUsage, code == 0 ? stdout : stderr);
  return code;
}
int Fail(const std::string& m) {
  fmt::print(stderr, "meshgatectl: {}\n", m);
  return 2;
}

std::string ReadInput(const std::string& f, bool& ok) {
  std::stringstream ss;
  if (f == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(f);
    if (!in) {
      ok = false;
      return {};
    }
    ss << in.rdbuf();
  }
  ok = true;
  return ss.str();
}

void PrintTables(const adm::Response& r, const std::string& format) {
  if (format == "json") {
    std::string o = "{";
    for (int t = 0; t < r.tables_size(); ++t) {
      const auto& tb = r.tables(t);
      o += (t ? "," : "") + JsonQuote(tb.title()) + ":[";
      for (int i = 0; i < tb.rows_size(); ++i) {
        o += i ? ",{" : "{";
        for (int c = 0; c < tb.columns_size() && c < tb.rows(i).cells_size(); ++c) {
          o += (c ? "," : "") + JsonQuote(tb.columns(c)) + ":" + JsonQuote(tb.rows(i).cells(c));
        }
        o += "}";
      }
      o += "]";
    }
    fmt::print("{}}}\n", o);
    return;
  }
  if (format == "yaml") {
    for (const auto& tb : r.tables()) {
      fmt::print("{}:\n", tb.title());
      if (tb.rows_size() == 0) fmt::print("  []\n");
      for (const auto& row : tb.rows()) {
        for (int c = 0; c < tb.columns_size() && c < row.cells_size(); ++c) {
          fmt::print("{}{}: {}\n", c ? "    " : "  - ", tb.columns(c), JsonQuote(row.cells(c)));
        }
      }
    }
    return;
  }
  for (int t = 0; t < r.tables_size(); ++t) {
    const auto& tb = r.tables(t);
    if (r.tables_size() > 1) fmt::print("{}{}:\n", t ? "\n" : "", tb.title());
    std::vector<size_t> w(tb.columns_size());
    for (int c = 0; c < tb.columns_size(); ++c) w[c] = tb.columns(c).size();
    for (const auto& row : tb.rows())
      for (int c = 0; c < row.cells_size() && c < int(w.size()); ++c) w[c] = std::max(w[c], row.cells(c).size());
    auto line = [&](auto get) {
      std::string s;
      for (size_t c = 0; c < w.size(); ++c) {
        std::string cell = get(c);
        s += cell;
        if (c + 1 < w.size()) s += std::string(w[c] - cell.size() + 3, ' ');
      }
      fmt::print("{}\n", s);
    };
    line([&](size_t c) { return tb.columns(int(c)); });
    for (const auto& row : tb.rows()) line([&](size_t c) { return int(c) < row.cells_size() ? row.cells(int(c)) : ""; });
  }
}

std::string Labels(const google::protobuf::RepeatedPtrField<std::string>& ls) {
  std::string s;
  for (const auto& l : ls) {
    if (l.rfind("k8s:io.kubernetes.pod.namespace=", 0) == 0) {
      s = l.substr(32) + "/" + s;
      continue;
    }
    if (l.rfind("k8s:io.cilium", 0) == 0 || l.rfind("k8s:io.kubernetes", 0) == 0) continue;
    s += (s.empty() || s.back() == '/' ? "" : ",") + (l.rfind("k8s:", 0) == 0 ? l.substr(4) : l);
  }
  return s;
}

void PrintFlow(const adm::Flow& f, const std::string& format) {
  if (format == "json") {
    auto arr = [](const auto& v) {
      std::string o = "[";
      for (int i = 0; i < v.size(); ++i) o += (i ? "," : "") + JsonQuote(v[i]);
      return o + "]";
    };
    fmt::print(
        "{{\"flow\":{{\"time_unix_ns\":{},\"verdict\":{},\"drop_reason\":{},\"drop_reason_desc\":{},"
        "\"IP\":{{\"source\":{},\"destination\":{}}},\"l4\":{{\"protocol\":{},\"source_port\":{},"
        "\"destination_port\":{}}},\"source\":{{\"identity\":{},\"labels\":{}}},\"destination\":{{"
        "\"identity\":{},\"labels\":{}}},\"traffic_direction\":{},\"is_reply\":{},\"node_name\":{},"
        "\"policy_rule\":{},\"Summary\":{}}}}}\n",
        f.time_unix_ns(), JsonQuote(f.verdict()), f.drop_reason(), JsonQuote(f.drop_reason_desc()),
        JsonQuote(f.ip_source()), JsonQuote(f.ip_destination()), JsonQuote(f.l4_protocol()), f.source_port(),
        f.destination_port(), f.source_identity(), arr(f.source_labels()), f.destination_identity(),
        arr(f.destination_labels()), JsonQuote(f.traffic_direction()), f.is_reply() ? "true" : "false",
        JsonQuote(f.node_name()), f.policy_rule(), JsonQuote(f.summary()));
    return;
  }
  std::time_t secs = std::time_t(f.time_unix_ns() / 1000000000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char tbuf[32];
  std::strftime(tbuf, sizeof tbuf, "%b %e %H:%M:%S", &tm);
  bool icmp = f.l4_protocol().rfind("ICMP", 0) == 0;
  auto ep = [&](const std::string& ip, uint32_t port, uint32_t id, const auto& labels) {
    std::string s = icmp || port == 0 ? ip : fmt::format("{}:{}", ip, port);
    std::string l = Labels(labels);
    return fmt::format("{} ({}{}{})", s, l.empty() ? "" : l, l.empty() ? "" : ", ", fmt::format("ID:{}", id));
  };
  std::string verdict = f.verdict();
  if (!f.drop_reason_desc().empty()) verdict += " (" + f.drop_reason_desc() + ")";
  fmt::print("{}.{:03}: [{}] {} {} {} {} {}{}\n", tbuf, (f.time_unix_ns() / 1000000) % 1000, f.node_name(),
             ep(f.ip_source(), f.source_port(), f.source_identity(), f.source_labels()),
             f.is_reply() ? "<-" : "->",
             ep(f.ip_destination(), f.destination_port(), f.destination_identity(), f.destination_labels()),
             f.traffic_direction() == "INGRESS" ? "to-endpoint" : f.traffic_direction() == "EGRESS" ? "from-endpoint" : "",
             verdict, f.summary().empty() ? "" : " " + f.summary());
}

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    ::close(fd);
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string sock = std::getenv("MESHGATE_SOCKET") ? std::getenv("MESHGATE_SOCKET") : "/run/meshgate/admin.sock";
  while (!args.empty() && (args[0] == "-s" || args[0] == "--socket")) {
    if (args.size() < 2) return Usage(2);
    sock = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) return Usage(2);
  std::string cmd = args[0];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return Usage(0);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  adm::Request req;
  std::string format = "table";
  auto need = [&](size_t& i) -> const std::string* {
    if (i + 1 >= rest.size()) return nullptr;
    return &rest[++i];
  };
  if (cmd == "apply") {
    std::string file, cluster;
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string* v = nullptr;
      if ((rest[i] == "-f" || rest[i] == "--filename") && (v = need(i))) file = *v;
      else if (rest[i] == "--cluster" && (v = need(i))) cluster = *v;
      else return Fail("apply: unexpected " + rest[i]);
    }
    if (file.empty()) return Fail("apply: -f FILE (or - for stdin) is required");
    bool ok;
    std::string text = ReadInput(file, ok);
    if (!ok) return Fail(file + ": cannot read");
    req.mutable_apply()->set_yaml(text);
    req.mutable_apply()->set_file(file == "-" ? "<stdin>" : file);
    req.mutable_apply()->set_cluster(cluster);
  } else if (cmd == "delete") {
    std::vector<std::string> pos;
    std::string ns = "default", cluster;
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string* v = nullptr;
      if ((rest[i] == "-n" || rest[i] == "--namespace") && (v = need(i))) ns = *v;
      else if (rest[i] == "--cluster" && (v = need(i))) cluster = *v;
      else if (rest[i].rfind("-", 0) == 0) return Fail("delete: unknown option " + rest[i]);
      else pos.push_back(rest[i]);
    }
    if (pos.size() != 2) return Fail("delete: KIND NAME");
    auto* d = req.mutable_delete_();
    d->set_kind(pos[0]);
    d->set_name(pos[1]);
    d->set_namespace_(ns);
    d->set_cluster(cluster);
  } else if (cmd == "get" || cmd == "stats" || cmd == "status") {
    std::string what;
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string* v = nullptr;
      if (rest[i] == "-o" && (v = need(i))) format = *v;
      else if (cmd == "get" && what.empty() && rest[i].rfind("-", 0) != 0) what = rest[i];
      else return Fail(cmd + ": unexpected " + rest[i]);
    }
    if (format != "table" && format != "json" && format != "yaml") return Fail("-o: table, json or yaml");
    if (cmd == "get") {
      if (what.empty()) return Fail("get: identities|ipcache|endpoints|services|policies");
      req.mutable_get()->set_what(what);
    } else if (cmd == "stats") {
      req.mutable_stats();
    } else {
      req.mutable_status();
    }
  } else if (cmd == "observe") {
    format = "compact";
    auto* o = req.mutable_observe();
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string* v = nullptr;
      const std::string& a = rest[i];
      if (a == "-f" || a == "--follow") o->set_follow(true);
      else if (a == "--last" && (v = need(i))) o->set_last(uint32_t(std::stoul(*v)));
      else if (a == "--verdict" && (v = need(i))) o->set_verdict(*v);
      else if (a == "--from-label" && (v = need(i))) o->add_from_label(*v);
      else if (a == "--to-label" && (v = need(i))) o->add_to_label(*v);
      else if (a == "--from-ip" && (v = need(i))) o->set_from_ip(*v);
      else if (a == "--to-ip" && (v = need(i))) o->set_to_ip(*v);
      else if (a == "--port" && (v = need(i))) o->set_port(uint32_t(std::stoul(*v)));
      else if (a == "--protocol" && (v = need(i))) o->set_protocol(*v);
      else if (a == "--since" && (v = need(i))) {
        double n = std::atof(v->c_str());
        char unit = v->empty() ? 's' : v->back();
        double secs = unit == 'm' ? n * 60 : unit == 'h' ? n * 3600 : n;
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch()).count();
        o->set_since_unix_ms(now - int64_t(secs * 1000));
      } else if (a == "-o" && (v = need(i))) format = *v;
      else return Fail("observe: unexpected " + a);
    }
    if (format != "compact" && format != "json") return Fail("observe -o: compact or json");
  } else if (cmd == "explain") {
    auto* e = req.mutable_explain();
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string* v = nullptr;
      const std::string& a = rest[i];
      if (a == "--subject" && (v = need(i))) e->set_subject(*v);
      else if (a == "--direction" && (v = need(i))) e->set_direction(*v);
      else if (a == "--peer-ip" && (v = need(i))) e->set_peer_ip(*v);
      else if (a == "--peer-identity" && (v = need(i))) e->set_peer_identity(uint32_t(std::stoul(*v)));
      else if (a == "--protocol" && (v = need(i))) e->set_protocol(*v);
      else if (a == "--port" && (v = need(i))) e->set_port(uint32_t(std::stoul(*v)));
      else return Fail("explain: unexpected " + a);
    }
    if (e->subject().empty() || (e->peer_ip().empty() && e->peer_identity() == 0)) {
      return Fail("explain: --subject and --peer-ip or --peer-identity are required");
    }
  } else if (cmd == "endpoint") {
    if (rest.size() == 2 && rest[0] == "remove") {
      req.mutable_endpoint()->set_remove(true);
      req.mutable_endpoint()->set_key(rest[1]);
    } else if (rest.size() == 3 && rest[0] == "add" && rest[1] == "-f") {
      bool ok;
      std::string text = ReadInput(rest[2], ok);
      if (!ok) return Fail(rest[2] + ": cannot read");
      req.mutable_endpoint()->set_yaml(text);
    } else {
      return Fail("endpoint remove CLUSTER/NAME | endpoint add -f FILE");
    }
  } else {
    fmt::print(stderr, "meshgatectl: unknown command '{}'\n\n", cmd);
    return Usage(2);
  }

  int fd = Connect(sock);
  if (fd < 0) return Fail(fmt::format("{}: {} (is the daemon running? -s SOCKET)", sock, std::strerror(errno)));
  std::signal(SIGPIPE, SIG_IGN);
  std::string out = meshgate::control::EncodeFrame(req);
  for (size_t off = 0; off < out.size();) {
    ssize_t n = ::write(fd, out.data() + off, out.size() - off);
    if (n <= 0) return Fail(fmt::format("{}: write: {}", sock, std::strerror(errno)));
    off += size_t(n);
  }
  meshgate::control::FrameDecoder dec(64u << 20);
  char buf[65536];
  int rc = 0;
  for (;;) {
    adm::Response r;
    auto more = dec.Next(r);
    if (!more.ok()) return Fail(std::string(more.status().message()));
    if (!*more) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        if (cmd == "observe") break;
        return Fail(sock + ": the daemon closed the connection without an answer");
      }
      dec.Feed(std::string_view(buf, size_t(n)));
      continue;
    }
    if (!r.ok() && !r.error().empty()) {
      fmt::print(stderr, "Error: {}\n", r.error());
      rc = 1;
    }
    if (!r.message().empty()) fmt::print("{}\n", r.message());
    if (r.tables_size() > 0) PrintTables(r, format);
    for (const auto& f : r.flows()) PrintFlow(f, format);
    std::fflush(stdout);
    if (r.done()) break;
  }
  ::close(fd);
  return rc;
}
