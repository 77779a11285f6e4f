#!/usr/bin/env bash
# Parser comparison: mimeparse vs the standard library, go-message and
# enmime, plus the raw base64+SHA-256 ceiling, on the generated shapes.
# One command, bounded time (about 3-4 minutes on 2 cores):
#   bench/parser.sh [OUTDIR]
# Env: COUNT (default 5) runs of each small shape, BIG_COUNT (default 3) of
# the 20 MB shape, BENCHTIME (default 1s).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-$(mktemp -d /tmp/mailgate-parser-bench.XXXXXX)}
mkdir -p "$out"
count=${COUNT:-5}
big_count=${BIG_COUNT:-3}
benchtime=${BENCHTIME:-1s}
# bench/ follows the root module through `replace mailgate => ../`; when the
# root gains a dependency, -mod=mod lets go record its checksum here.
export GOFLAGS=-mod=mod

echo "parser: same-work check (every parser finds the same leaves and hashes)"
BENCH_FULL=1 go test -count=1 -run TestSameWork ./parser/

echo "parser: benchmarks -> $out/raw.txt"
go test -c -o "$out/parser.test" ./parser/
{
  "$out/parser.test" -test.run '^$' -test.bench 'BenchmarkParse/(small-text|html-alternative|attach-1mb|nested-50)/' \
    -test.benchtime "$benchtime" -test.count "$count"
  "$out/parser.test" -test.run '^$' -test.bench 'BenchmarkParse/multi-20mb/' \
    -test.benchtime 10x -test.count "$big_count"
} | tee "$out/raw.txt" | grep -E '^(Benchmark|cpu:)' >&2

echo
echo "== benchstat =="
go tool benchstat "$out/raw.txt" | tee "$out/benchstat.txt"
echo
echo "== table (medians) =="
go run ./cmd/benchtable "$out/raw.txt" | tee "$out/table.md"
echo
echo "parser: results in $out"
