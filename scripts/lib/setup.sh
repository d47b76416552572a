# Shared set-up for scripts/test and scripts/demo: install what is missing,
# reserve hugepages when possible, configure and build. Idempotent.
# Source it; it defines mg_setup. Expects to run as root on Debian 12.

MG_PACKAGES=(
  build-essential pkg-config meson ninja-build python3
  libdpdk-dev dpdk dpdk-dev
  libboost-dev libprotobuf-dev protobuf-compiler libabsl-dev libfmt-dev
  libyaml-cpp-dev catch2
  iproute2 iputils-ping ethtool curl gnuplot-nox
)

mg_log() { printf '\033[1m[meshgate]\033[0m %s\n' "$*" >&2; }
mg_die() { mg_log "error: $*"; exit 1; }

mg_install_packages() {
  local missing=()
  for p in "${MG_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    mg_log "packages: all ${#MG_PACKAGES[@]} present"
    return
  fi
  [ "$(id -u)" -eq 0 ] || mg_die "missing packages (${missing[*]}); run as root to install them"
  mg_log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || mg_die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    mg_die "apt-get install ${missing[*]} failed"
}

# Hugepages make large ACL tables 3-4x faster (performance.md); tests run with
# --no-huge either way, benchmarks use hugepages when they are there.
mg_hugepages() {
  local want=${MG_HUGEPAGES:-512}
  if [ "$(id -u)" -ne 0 ]; then
    mg_log "hugepages: not root, leaving as is ($(cat /proc/sys/vm/nr_hugepages) reserved)"
    return
  fi
  if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt "$want" ]; then
    echo "$want" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
  fi
  if ! grep -q ' hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
  fi
  if [ "$(cat /proc/sys/vm/nr_hugepages)" -gt 0 ] && grep -q ' hugetlbfs ' /proc/mounts; then
    mg_log "hugepages: $(cat /proc/sys/vm/nr_hugepages) x 2 MiB reserved and mounted"
  else
    mg_log "hugepages: unavailable; DPDK runs with --no-huge"
  fi
}

mg_build() {
  local top=$1
  if [ ! -f "$top/build/build.ninja" ]; then
    mg_log "configuring build/"
    meson setup "$top/build" "$top" >/dev/null || mg_die "meson setup failed"
  fi
  mg_log "building"
  ninja -C "$top/build" || mg_die "build failed"
}

mg_setup() {
  local top=$1
  mg_install_packages
  mg_hugepages
  mg_build "$top"
}
