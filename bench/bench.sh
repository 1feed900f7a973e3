#!/usr/bin/env bash
# minirun benchmarks, run by hand as root (never in CI):
#
#   bench/bench.sh [bundle|all]
#
# Every comparison is measured in the same run, on the same machine, and
# reported as a ratio of medians, so the figures don't depend on the host.
# Needs: hyperfine, runc, python3 (apt-get install hyperfine runc).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
OUT=bench/out
mkdir -p "$OUT"
what=${1:-all}

cargo build --release --quiet -p minirun -p rootfs-fixtures
MINIRUN=$PWD/target/release/minirun
FIXTURES=$PWD/target/release/minirun-fixtures
WORK=$(mktemp -d /tmp/minirun-bench.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# median of a hyperfine JSON export, in milliseconds
median() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1])/float(sys.argv[2])))' "$1" "$2"; }

# hyperfine NAME COMMAND: median in ms, JSON kept under bench/out
measure() {
    local name=$1; shift
    hyperfine --shell=bash --style none --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/$name.json" "$@" >/dev/null
    median "$OUT/$name.json"
}

bench_bundle() {
    local bundle=$WORK/bundle
    "$FIXTURES" bundle "$bundle" -- true
    # unique ids per invocation; both runtimes delete the container after run
    local m r
    m=$(measure minirun-run-bundle "$MINIRUN --root $WORK/mr run --bundle $bundle b\$RANDOM\$RANDOM")
    r=$(measure runc-run-bundle "runc --root $WORK/runc run --bundle $bundle b\$RANDOM\$RANDOM")
    # the cost of the CVE-2019-5736 guard: re-executing from a sealed memfd
    local plain sealed
    plain=$(measure minirun-noop "$MINIRUN --root $WORK/mr list -q")
    sealed=$(measure minirun-noop-sealed "$MINIRUN --root $WORK/mr list -q --sealed")
    echo "run --bundle (busybox true), median of $RUNS:"
    echo "  minirun  ${m} ms"
    echo "  runc     ${r} ms"
    echo "  ratio    $(ratio "$m" "$r") x runc   (target <= 0.70)"
    echo "  sealed re-exec (CVE-2019-5736 guard): list -q ${plain} ms, with the guard ${sealed} ms"
}

case $what in
    bundle) bench_bundle ;;
    all) bench_bundle ;;
    *) echo "usage: $0 [bundle|all]" >&2; exit 2 ;;
esac
