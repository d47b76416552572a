// `meshgate vm`: a stand-in for a virtual machine on a vhost-user port. It is
// a separate DPDK process with one net_virtio_user port (what QEMU's virtio
// device looks like to meshgate's net_vhost port) that can answer TCP SYNs,
// UDP datagrams and ICMP echo requests, and probe an address with new
// connections, checking that the answers come back with the addresses
// reversed. Used by the VM tests and for trying vhost-user by hand.
#pragma once

#include <string>
#include <vector>

namespace meshgate::control {

int RunVm(const std::vector<std::string>& args);

}  // namespace meshgate::control
