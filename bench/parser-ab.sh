#!/usr/bin/env bash
# A/B comparison of mimeparse at two commits, with go-message measured in
# the same rounds: for each of R rounds and each shape, one benchmark run
# of the old tree's mimeparse, the new tree's mimeparse and go-message,
# alternated, so a change of the machine's load falls on all three.
#   bench/parser-ab.sh OLD_REV [NEW_REV]     (NEW_REV: the working tree)
# Env: R (default 9) rounds. Prints medians of cpu-ns/op and the ratios.
set -euo pipefail
cd "$(dirname "$0")"
old=${1:?usage: parser-ab.sh OLD_REV [NEW_REV]}
new=${2:-}
R=${R:-9}
export GOFLAGS=-mod=mod
tmp=$(mktemp -d /tmp/mailgate-parser-ab.XXXXXX)
cleanup() {
  git worktree remove --force "$tmp/old" 2>/dev/null || true
  [ -n "$new" ] && git worktree remove --force "$tmp/new" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add -q --detach "$tmp/old" "$old"
(cd "$tmp/old/bench" && go test -c -o "$tmp/old.test" ./parser/)
if [ -n "$new" ]; then
  git worktree add -q --detach "$tmp/new" "$new"
  (cd "$tmp/new/bench" && go test -c -o "$tmp/new.test" ./parser/)
else
  go test -c -o "$tmp/new.test" ./parser/
fi
run() { # binary shape parser iterations label
  "$1" -test.run '^$' -test.bench "BenchmarkParse/$2/$3\$" -test.benchtime "${4}x" -test.count 1 |
    awk -v s="$2" -v l="$5" '/^Benchmark/ {for (i = 1; i <= NF; i++) if ($i == "cpu-ns/op") print s, l, $(i-1)}'
}
for _ in $(seq "$R"); do
  for sn in small-text:3000 html-alternative:1000 attach-1mb:100 nested-50:200 multi-20mb:5; do
    s=${sn%%:*} n=${sn##*:}
    run "$tmp/old.test" "$s" mimeparse "$n" old
    run "$tmp/new.test" "$s" mimeparse "$n" new
    run "$tmp/new.test" "$s" go-message "$n" go-message
  done
done > "$tmp/raw.txt"
python3 - "$tmp/raw.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    s, k, v = line.split()
    rows.setdefault(s, {}).setdefault(k, []).append(int(v))
print("| shape | mimeparse old | mimeparse new | go-message | new ÷ old | go-message ÷ new |")
print("|---|---:|---:|---:|---:|---:|")
for s in ["small-text", "html-alternative", "attach-1mb", "nested-50", "multi-20mb"]:
    m = {k: statistics.median(v) for k, v in rows[s].items()}
    print(f"| {s} | {m['old']:,.0f} | {m['new']:,.0f} | {m['go-message']:,.0f} | {m['new']/m['old']:.2f} | {m['go-message']/m['new']:.2f}× |")
PY
