# Sourced by the scripts that start servers for tests: refuse unless this network namespace has only the
# loopback interface (run them under `unshare -n`), then bring loopback up. Usage: loopback_only WHAT
loopback_only() {
  if [ "$(ip -o link show | grep -vc ': lo:')" != 0 ]; then
    echo "refusing to start $1: this namespace has interfaces other than lo (run it under unshare -n)" >&2
    exit 2
  fi
  ip link set lo up
}
