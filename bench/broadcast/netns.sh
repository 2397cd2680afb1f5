#!/usr/bin/env bash
# A small lab in network namespaces for bench/broadcast: a switch (namespace lbbsw with a
# bridge) and hosts lbbh0 (the labbeam server, unlimited link) and lbbh1..lbbhN (lab PCs),
# each joined to the switch by a veth pair whose both directions are shaped by tc (tbf) to
# RATE: a PC can upload RATE and download RATE, like a switched lab network.
#
#   netns.sh up N RATE     e.g. netns.sh up 9 20mbit
#   netns.sh down
#   netns.sh exec HOST CMD…    run CMD inside lbbhHOST
#
# Every name starts with lbb (this engineer's prefix); addresses are 10.77.0.10+i/24, only
# inside these namespaces.
set -euo pipefail

cmd=${1:-}
case "$cmd" in
up)
  n=${2:?number of PCs}
  rate=${3:?rate, e.g. 20mbit}
  "$0" down >/dev/null 2>&1 || true
  ip netns add lbbsw
  ip -n lbbsw link add lbbbr0 type bridge
  ip -n lbbsw link set lbbbr0 up
  ip -n lbbsw link set lo up
  for i in $(seq 0 "$n"); do
    ip netns add "lbbh$i"
    ip link add "lbbv$i" netns "lbbh$i" type veth peer name "lbbs$i" netns lbbsw
    ip -n "lbbh$i" link set lo up
    ip -n "lbbh$i" addr add "10.77.0.$((10 + i))/24" dev "lbbv$i"
    ip -n "lbbh$i" link set "lbbv$i" up
    ip -n lbbsw link set "lbbs$i" master lbbbr0
    ip -n lbbsw link set "lbbs$i" up
    if [ "$i" -gt 0 ]; then
      # Upload (host → switch) and download (switch → host), each at RATE.
      ip netns exec "lbbh$i" tc qdisc add dev "lbbv$i" root tbf rate "$rate" burst 64kb latency 100ms
      ip netns exec lbbsw tc qdisc add dev "lbbs$i" root tbf rate "$rate" burst 64kb latency 100ms
    fi
  done
  ;;
down)
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^lbb(h[0-9]+|sw)$' || true); do
    ip netns del "$ns"
  done
  ;;
exec)
  host=${2:?host number}
  shift 2
  exec ip netns exec "lbbh$host" "$@"
  ;;
*)
  echo "usage: $0 up N RATE | down | exec HOST CMD…" >&2
  exit 2
  ;;
esac
