#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install it (Debian/Ubuntu, as root) when
# missing, start dockerd when it is not running. Idempotent and quick when the engine is up.
set -euo pipefail

engine_up() { timeout 5 docker info >/dev/null 2>&1; }

if engine_up; then exit 0; fi

# iptables: ipaas's host firewall (runtime.firewall) keeps containers off the host's services.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1 \
  || ! command -v iptables >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: dockerd, mmdebstrap or iptables is missing; run as root or install docker.io, mmdebstrap and iptables" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io mmdebstrap busybox-static git \
    iptables >/dev/null
fi

if ! command -v docker >/dev/null 2>&1; then
  echo "ensure-docker: no docker client on PATH" >&2
  exit 1
fi

# Without an init system nobody starts the engine; a pid file left by a killed dockerd blocks it.
# The machine's engine is the one in /var/run/docker.pid: other dockerds (the Swarm tests' nodes)
# do not count. A killed dockerd can linger as a zombie for a moment: only living ones count.
main_engine_alive() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [ -n "$pid" ] && ps -o stat= -p "$pid" 2>/dev/null | grep -q '^[RSD]'
}
if ! main_engine_alive; then
  rm -f /var/run/docker.pid
  # The containerd a killed dockerd managed: dead (stale pid file) or orphaned. Either blocks
  # the new dockerd, which waits for it and gives up.
  pkill -9 -f /var/run/docker/containerd/containerd.toml 2>/dev/null || true
  rm -f /var/run/docker/containerd/containerd.pid
  # ipaas makes a network per user: give the engine many small address pools (256 x /24)
  # instead of its default ~30 large ones.
  nohup dockerd --default-address-pool base=10.213.0.0/16,size=24 \
    >/var/log/ipaas-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  if engine_up; then exit 0; fi
  sleep 0.5
done
echo "ensure-docker: the engine did not answer within 30 s; see /var/log/ipaas-dockerd.log" >&2
exit 1
