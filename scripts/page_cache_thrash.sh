#!/bin/sh
# A workload that thrashes its page cache under a memory limit, managed by `foresight run --apply`:
# it reads a 96 MiB file over and over in a cgroup of its own, limited to 32 MiB. Its working set
# then reads almost nothing (its pages are evicted before they are read again), and only its
# memory stalls (PSI) show that the limit is too tight (docs/closed-loop.md, "Demand, not usage").
# Needs root, the cgroup memory controller and PSI; cgroup v2, or v1 with the unified hierarchy
# (hybrid), where PSI is.
#
#   sudo scripts/page_cache_thrash.sh FORESIGHT [SECONDS=16] [VIEW=2] [MODE=thrash]
#
# MODE `stream` reads a sparse 1 TiB file once instead: it stalls in reclaim at its limit too, but
# reads nothing back, so no limit would cure it and the limit must not be raised for it. MODE
# `parent` thrashes in a cgroup limited to 62 MiB under a parent limited to 60 MiB, in dry-run:
# the parent's limit is the short one, and foresight must say so rather than plan more for it.
# Prints foresight's log and live view, the cgroup's memory PSI and limit every 2 s, then
# "stalled: S us in T us" (the cgroup's PSI `some` while foresight ran) and "limit after: BYTES".
# The usage floor's margin is 0 here, so that it raises nothing by itself. Used by the tests
# RunCommand.AWorkloadThrashingItsPageCacheAtItsMemoryLimitIsGivenMore,
# RunCommand.AWorkloadStreamingAFileOnceAtItsMemoryLimitIsNotGivenMore and
# RunCommand.AWorkloadStalledUnderItsParentsMemoryLimitIsToldItsOwnWouldNotHelp.
set -eu
foresight=$1
seconds=${2:-16}
view=${3:-2}
mode=${4:-thrash}
case $mode in thrash|stream|parent) ;; *) echo "MODE must be thrash, stream or parent, not '$mode'" >&2; exit 2 ;; esac
dir=$(mktemp -d /tmp/foresight-thrash-XXXXXX)
name=$(basename "$dir")
cg=$name  # the workload's cgroup
[ "$mode" = parent ] && cg=$name/app
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  hs=.; mem=.; file=memory.max; psi=$cg/memory.pressure
else
  hs='cpuacct cpu memory unified'; mem=memory; file=memory.limit_in_bytes; psi=unified/$cg/memory.pressure
fi
limit=$mem/$cg/$file; procs=$mem/$cg/cgroup.procs
workload= watch=
cleanup() {
  [ -n "$watch" ] && kill "$watch" 2>/dev/null || true
  [ -n "$workload" ] && { kill "$workload" 2>/dev/null; wait "$workload" 2>/dev/null; } || true
  # Its `cat` too: a cgroup with a process left cannot be removed.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -s "/sys/fs/cgroup/$procs" ] || break
    kill $(cat "/sys/fs/cgroup/$procs") 2>/dev/null || true
    sleep 0.1
  done
  # A task that has just exited can still hold a hierarchy's cgroup for a moment.
  for h in $hs; do
    for c in $cg $name; do
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -d "/sys/fs/cgroup/$h/$c" ] || break
        rmdir "/sys/fs/cgroup/$h/$c" 2>/dev/null || sleep 0.1
      done
      [ -d "/sys/fs/cgroup/$h/$c" ] && echo "cannot remove /sys/fs/cgroup/$h/$c" >&2
    done
  done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'defaults:\n  memory: {usage_margin: 0, usage_margin_abs: 0}\nleave_alone: []\n' > "$dir/planner.yaml"
if [ "$mode" != stream ]; then
  dd if=/dev/zero of="$dir/data" bs=1M count=96 conv=fsync status=none
  # Its pages leave the cache, so that the workload's reads are charged to its own cgroup.
  dd if="$dir/data" iflag=nocache count=0 status=none
  read='while :; do cat '"$dir/data"' > /dev/null; done'
else
  # Sparse: its holes read as zeros through the page cache, at several GB/s, and take no disk.
  truncate -s 1T "$dir/data"
  read='exec dd if='"$dir/data"' of=/dev/null bs=1M status=none'
fi
for h in $hs; do mkdir -p "/sys/fs/cgroup/$h/$cg"; done
apply=--apply
if [ "$mode" = parent ]; then
  [ "$mem" = . ] && echo +memory > "/sys/fs/cgroup/$name/cgroup.subtree_control"
  echo 60M > "/sys/fs/cgroup/$mem/$name/$file"
  echo 62M > "/sys/fs/cgroup/$limit"
  apply=
else
  echo 32M > "/sys/fs/cgroup/$limit"
fi
sh -c 'for h in '"$hs"'; do echo $$ > /sys/fs/cgroup/$h/'"$cg"'/cgroup.procs; done
       '"$read" &
workload=$!
(while sleep 2; do
   echo "cgroup: memory.pressure $(grep some "/sys/fs/cgroup/$psi"), limit $(cat "/sys/fs/cgroup/$limit")"
 done) &
watch=$!
stalled() { sed -n 's/^some .*total=\([0-9]*\)$/\1/p' "/sys/fs/cgroup/$psi"; }
stalled0=$(stalled); t0=$(date +%s%N)
rc=0
"$foresight" run $apply --audit "$dir/audit.db" --planner "$dir/planner.yaml" --period 0.2 --min-history 0 \
  --duration "$seconds" --view "$view" --listen 127.0.0.1:0 --database '' "cgroup:/$cg" || rc=$?
echo "stalled: $(( $(stalled) - stalled0 )) us in $(( ($(date +%s%N) - t0) / 1000 )) us"
echo "limit after: $(cat "/sys/fs/cgroup/$limit")"
exit $rc
