#!/usr/bin/env bash
# End-to-end: `foresight allocate`, `history` and `history --rollback` on a cgroup v1 fixture tree.
# Usage: cli_test.sh path/to/foresight
set -euo pipefail
foresight="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/cg"
mkdir -p "$root/cpu/app" "$root/memory/app"
echo -1 > "$root/cpu/app/cpu.cfs_quota_us"
echo 100000 > "$root/cpu/app/cpu.cfs_period_us"
echo 9223372036854771712 > "$root/memory/app/memory.limit_in_bytes"
echo 104857600 > "$root/memory/app/memory.usage_in_bytes"
export FORESIGHT_AUDIT_DB="$tmp/audit.db"
check() { # file expected
  local got; got="$(cat "$1")"
  if [[ "$got" != "$2" ]]; then echo "FAIL: $1 is '$got', expected '$2'" >&2; exit 1; fi
}

"$foresight" allocate --backend cgroup-v1 -o root="$root" --workload app --cpu 1.5 --memory 2G --dry-run
check "$root/cpu/app/cpu.cfs_quota_us" -1

"$foresight" allocate --backend cgroup-v1 -o root="$root" --workload app --cpu 1.5 --memory 2G --reason first
check "$root/cpu/app/cpu.cfs_quota_us" 150000
check "$root/memory/app/memory.limit_in_bytes" 2147483648

# Below usage (100 MiB) plus 10 %: refused, nothing written.
if "$foresight" allocate --backend cgroup-v1 -o root="$root" --workload app --memory 64M; then
  echo "FAIL: memory below usage was accepted" >&2; exit 1
fi
check "$root/memory/app/memory.limit_in_bytes" 2147483648

# Page cache the kernel reclaims first is not memory in use: 1 GiB used, 900 MiB of it inactive
# file pages, takes 200M (working set 100 MiB plus 10 %); --dry-run, so the tree stays as it was.
echo 1073741824 > "$root/memory/app/memory.usage_in_bytes"
printf 'total_cache 1000000000\ntotal_inactive_file 943718400\n' > "$root/memory/app/memory.stat"
"$foresight" allocate --backend cgroup-v1 -o root="$root" --workload app --memory 200M --dry-run
echo 104857600 > "$root/memory/app/memory.usage_in_bytes"
rm "$root/memory/app/memory.stat"

"$foresight" allocate --backend cgroup-v1 -o root="$root" --workload app --cpu 0.5 --reason second
check "$root/cpu/app/cpu.cfs_quota_us" 50000

"$foresight" history --json > "$tmp/h.json"
python3 - "$tmp/h.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
assert [r["id"] for r in h] == [2, 1], h
assert h[0]["reason"] == "second" and h[0]["result"] == "ok", h[0]
assert h[0]["before"] == {"cpu": 1.5, "memory": 2147483648.0}, h[0]["before"]
assert h[0]["after"] == {"cpu": 0.5}, h[0]["after"]
assert h[1]["before"] == {}, h[1]["before"]
PY

"$foresight" history --rollback 2
check "$root/cpu/app/cpu.cfs_quota_us" 150000
# #1 set cpu 1.5 and memory 2G; put cpu elsewhere by hand: rollback refuses, --force goes ahead.
echo 70000 > "$root/cpu/app/cpu.cfs_quota_us"
if "$foresight" history --rollback 1; then echo "FAIL: rollback over a later change" >&2; exit 1; fi
check "$root/cpu/app/cpu.cfs_quota_us" 70000
"$foresight" history --rollback 1 --force
check "$root/cpu/app/cpu.cfs_quota_us" -1
check "$root/memory/app/memory.limit_in_bytes" -1
"$foresight" history | grep -q "rollback of #1 (first)"

# `auto` on the same tree: its v1 files (no systemd here, said explicitly so the test does not
# depend on the machine), the route stored with the record, and a rollback the same way.
export FORESIGHT_AUDIT_DB="$tmp/auto.db"
"$foresight" allocate --backend auto -o root="$root" -o systemd=no --workload app --cpu 0.25 --reason auto
check "$root/cpu/app/cpu.cfs_quota_us" 25000
"$foresight" history --json > "$tmp/auto.json"
python3 - "$tmp/auto.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
assert h[0]["backend"] == "auto" and h[0]["options"]["cgroup"] == "v1" and h[0]["options"]["systemd"] == "no", h[0]
PY
"$foresight" history --rollback 1
check "$root/cpu/app/cpu.cfs_quota_us" -1
echo "cli_test: ok"
