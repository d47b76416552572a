// `meshgate mesh --config FILE`: the mesh controller as a process. It reads a
// mesh description in the scenario format (clusters, namespaces, endpoints;
// plus per cluster `feed:` the daemon's feed socket, per endpoint `port:` and
// `mac:` on its daemon, and a top-level `admin:` socket), connects to every
// daemon's feed (reconnecting, each time with a full resync), and takes
// Services/policies and endpoint changes from meshgatectl on its admin
// socket. See docs/daemon.md.
#pragma once

#include <string>

namespace meshgate::control {

int RunMesh(const std::string& config_path);

}  // namespace meshgate::control
