#!/usr/bin/env bash
# minirun benchmarks, run by hand as root (never in CI):
#
#   bench/bench.sh [bundle|image|seccomp|unpack|net|ports|usernet|ipv6|memory|bridge|all]
#
# PROFILE=debug measures a debug build (quicker to build; fine for ratios);
# CARGO_TARGET_DIR is honoured.
#
# Every comparison is measured in the same run, on the same machine, and
# reported as a ratio (or difference) of medians, so the figures don't depend
# on the host. Network benchmarks run inside private "host"/"outside" network
# namespaces, like the tests: the machine's own network is never touched.
# Needs: hyperfine, runc, iperf3, python3 (apt-get install hyperfine runc iperf3).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
OUT=$PWD/bench/out
mkdir -p "$OUT"
what=${1:-all}

PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ "$PROFILE" = release ]; then PFLAG=--release; else PFLAG=; fi
cargo build $PFLAG --quiet -p minirun -p rootfs-fixtures
[ "$what" = ipv6 ] || [ "$what" = memory ] || [ "$what" = bridge ] || cargo build $PFLAG --quiet -p minirun-images --example unpack
# The build leaves tens of MB of dirty pages whose write-back would land in
# the first measurements (several ms per run on this disk): flush them now.
sync
FIXTURES=$TARGET/$PROFILE/minirun-fixtures
UNPACK=$TARGET/$PROFILE/examples/unpack
WORK=$(mktemp -d /tmp/minirun-bench.XXXXXX)
# minirun runs from an installed copy, as users run it: the linker's output
# file sits in the page cache as small pages, and executing it (twice per
# run: the CVE-2019-5736 guard re-executes) took 3.4 ms more per run here
# than a copy written in one go.
MINIRUN=$WORK/minirun
install -m 0755 "$TARGET/$PROFILE/minirun" "$MINIRUN"
NS=mrbench$$
# State roots on a tmpfs, as their defaults (/run/minirun, /run/runc,
# /run/crun) are; images and container layers on this disk, as
# /var/lib/minirun is.
STATE=$WORK/state
mkdir -p "$STATE"
mount -t tmpfs -o size=256m minirun-bench-state "$STATE"
M="$MINIRUN --root $STATE/run --data-root $WORK/data"

cleanup() {
    set +e
    if [ -e "/run/netns/$NS-host" ]; then
        for c in $(inhost $M ps -aq 2>/dev/null); do inhost $M rm -f "$c" >/dev/null 2>&1; done
    fi
    for c in $($M ps -aq 2>/dev/null); do $M rm -f "$c" >/dev/null 2>&1; done
    pkill -f "iperf3 -s -p 5201" 2>/dev/null
    ip netns del "$NS-host" 2>/dev/null
    ip netns del "$NS-out" 2>/dev/null
    # every mount left under the work directory (WORK is never empty: mktemp made it)
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null
        done
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# median of a hyperfine JSON export, in milliseconds
median() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
calc() { python3 -c "print('%.2f' % ($1))"; }

# mean user+sys CPU time in ms over the 4 rounds of a pair() side (hyperfine
# counts the whole process tree)
cpu() {
    python3 -c 'import json,sys
v=[json.load(open("%s-%d.json" % (sys.argv[1], i)))["results"][0] for i in (1, 2, 3, 4)]
print("%.2f" % (sum(r["user"] + r["system"] for r in v) / 4 * 1000))' "$OUT/$1"
}

# interleave N A_CMD B_CMD: runs A and B alternately N times each (A B B A
# ...) and prints "median_a median_b median_of(b-a)", in ms. For costs
# smaller than the machine's drift: each difference is of two neighbouring
# runs, so slow changes of the machine cancel out.
interleave() {
    python3 - "$@" <<'EOF2'
import statistics, subprocess, sys, time
n, a, b = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def once(cmd):
    t = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
for _ in range(3):
    once(a); once(b)
ta, tb, d = [], [], []
for i in range(n):
    if i % 2:
        y = once(b); x = once(a)
    else:
        x = once(a); y = once(b)
    ta.append(x); tb.append(y); d.append(y - x)
print("%.2f %.2f %.2f" % (statistics.median(ta), statistics.median(tb), statistics.median(d)))
EOF2
}

# measure NAME COMMAND: median in ms, JSON kept under bench/out
measure() {
    local name=$1; shift
    hyperfine --shell=bash --style none --runs "$RUNS" --warmup "$WARMUP" \
        --export-json "$OUT/$name.json" "$@" >/dev/null 2>&1
    median "$OUT/$name.json"
}

# pair A_NAME A_CMD B_NAME B_CMD: "median_a median_b", each the mean of the
# medians of 4 rounds of RUNS/4 runs in the order A B B A A B B A, so that
# slow drift of the machine (write-back, RCU grace periods) hits both sides
# alike; always measuring A first showed differences of 3 ms where
# interleaved pairs showed none.
pair() {
    local a=0 b=0 i n=$(( (RUNS + 3) / 4 ))
    for i in 1 2 3 4; do
        if [ $((i % 2)) = 1 ]; then
            a=$(calc "$a + $(RUNS=$n measure "$1-$i" "$2")")
            b=$(calc "$b + $(RUNS=$n measure "$3-$i" "$4")")
        else
            b=$(calc "$b + $(RUNS=$n measure "$3-$i" "$4")")
            a=$(calc "$a + $(RUNS=$n measure "$1-$i" "$2")")
        fi
    done
    echo "$(calc "$a/4") $(calc "$b/4")"
}

load_busybox() {
    [ -f "$WORK/busybox.tar" ] || "$FIXTURES" image "$WORK/busybox.tar" >/dev/null
    $M load -i "$WORK/busybox.tar" >/dev/null
}

# A private "host" namespace joined to an "outside" one (198.18.0.0/24).
sandbox() {
    ip netns list | grep -q "^$NS-host" && return 0
    ip netns add "$NS-host"
    ip netns add "$NS-out"
    ip -n "$NS-host" link add up0 type veth peer name out0 netns "$NS-out"
    ip -n "$NS-host" addr add 198.18.0.1/24 dev up0
    ip -n "$NS-out" addr add 198.18.0.2/24 dev out0
    for n in host out; do
        ip -n "$NS-$n" link set lo up
    done
    ip -n "$NS-host" link set up0 up
    ip -n "$NS-out" link set out0 up
    ip -n "$NS-host" route add default via 198.18.0.2
}
inhost() { nsenter --net=/run/netns/$NS-host "$@"; }
inout() { nsenter --net=/run/netns/$NS-out "$@"; }

bench_bundle() {
    local bundle=$WORK/bundle
    "$FIXTURES" bundle "$bundle" -- true >/dev/null
    local m r ga gb gd
    m=$(measure minirun-run-bundle "$M run --bundle $bundle b\$RANDOM\$RANDOM")
    r=$(measure runc-run-bundle "runc --root $STATE/runc run --bundle $bundle b\$RANDOM\$RANDOM")
    echo "run --bundle (busybox true), median of $RUNS:"
    echo "  minirun  ${m} ms"
    echo "  runc     ${r} ms"
    echo "  ratio    $(calc "$m/$r") x runc   (target <= 0.70)"
    # The CVE-2019-5736 guard re-executes minirun from a read-only clone of
    # its mount, unless the binary already lies on a read-only mount: the
    # same binary bind-mounted read-only runs without it.
    local ro=$WORK/ro-minirun
    touch "$ro"
    mount --bind "$MINIRUN" "$ro"
    mount -o remount,ro,bind "$ro"
    local MRO="$ro --root $STATE/run --data-root $WORK/data"
    read -r ga gb gd < <(interleave "$RUNS" "$MRO run --bundle $bundle g\$RANDOM\$RANDOM" "$M run --bundle $bundle g\$RANDOM\$RANDOM")
    echo "  CVE-2019-5736 guard (read-only re-exec), interleaved, $RUNS pairs: ${gd} ms (binary on a read-only mount ${ga} ms, as installed ${gb} ms)"
    if command -v crun >/dev/null; then
        # Debian's crun 1.8 refuses a hybrid cgroup host whose v2 hierarchy
        # has a controller ("drop all controllers from cgroupv2"): there it
        # runs in a mount namespace where that hierarchy is an empty tmpfs.
        # The wrapper alone is measured too and subtracted.
        local wrap=$WORK/crun-wrap
        cat > "$wrap" <<'EOF2'
#!/bin/sh
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    exec unshare -m sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified && exec "$@"' sh "$@"
fi
exec "$@"
EOF2
        chmod +x "$wrap"
        local c cw ia ib d
        c=$(measure crun-run-bundle "$wrap crun --root $STATE/crun run --bundle $bundle c\$RANDOM\$RANDOM")
        cw=$(measure crun-wrapper "$wrap true")
        c=$(calc "$c-$cw")
        echo "  crun     ${c} ms (${cw} ms of wrapper subtracted)"
        echo "  ratio    $(calc "$m/$c") x crun   (target <= 1.00; crun is $(calc "$c/$r") x runc)"
        # Both sides pay the wrapper once; minirun runs after it, not inside
        # it: inside its mount namespace (the v2 hierarchy covered by a tmpfs)
        # minirun took 8 ms more than on the host, a cost of the wrapper that
        # its users never pay.
        read -r ia ib d < <(interleave "$((RUNS * 3))" "$wrap crun --root $STATE/crun run --bundle $bundle c\$RANDOM\$RANDOM" \
            "$wrap true; $M run --bundle $bundle b\$RANDOM\$RANDOM")
        echo "  interleaved, $((RUNS * 3)) pairs, each paying the wrapper once: crun ${ia} ms, minirun ${ib} ms, minirun - crun = ${d} ms   (target <= 0)"
    fi
}

bench_image() {
    load_busybox
    local bundle=$WORK/bundle-image
    "$FIXTURES" bundle "$bundle" -- true >/dev/null
    local img bun
    read -r img bun < <(pair minirun-run-image "$M run --rm --net none busybox true" \
        minirun-run-bundle-same-rootfs "$M run --bundle $bundle i\$RANDOM\$RANDOM")
    echo "run --rm --net none busybox true vs run --bundle of the same rootfs, median of $RUNS (4 rounds, A B B A A B B A):"
    echo "  image   ${img} ms"
    echo "  bundle  ${bun} ms"
    echo "  the image path adds $(calc "$img-$bun") ms   (target <= 3)"
    local ia ib d
    read -r ia ib d < <(interleave "$((RUNS * 3))" "$M run --bundle $bundle i\$RANDOM\$RANDOM" \
        "$M run --rm --net none busybox true")
    echo "  interleaved, $((RUNS * 3)) pairs: bundle ${ia} ms, image ${ib} ms, the image path adds ${d} ms   (target <= 3)"
}

# docker's default seccomp profile (on for every run) vs none, and vs a
# one-rule filter (what any filter costs, whatever its size). The filter is
# compiled once and cached as BPF, so each run only loads it. A cost this
# small needs neither plain blocks (this VM drifts by more between them) nor
# run-by-run pairs (a cost a run leaves to the next one lands on the other
# side): blocks of 6 runs of each arm, interleaved, the first run of each
# block dropped; the median of the block differences with a bootstrap 95%
# interval. SECCOMP_BLOCKS (default 300, about 4 minutes) sets the count.
bench_seccomp() {
    load_busybox
    printf '%s' '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["kexec_load"],"action":"SCMP_ACT_ERRNO"}]}' >"$WORK/one-rule.json"
    local off="$M run --rm --net none --security-opt seccomp=unconfined busybox true"
    local one="$M run --rm --net none --security-opt seccomp=$WORK/one-rule.json busybox true"
    local on="$M run --rm --net none busybox true"
    echo "run --rm --net none busybox true: seccomp unconfined, a one-rule filter, docker's default profile ($PROFILE build), ${SECCOMP_BLOCKS:-300} interleaved blocks of 6:"
    python3 - "${SECCOMP_BLOCKS:-300}" "$off" "$one" "$on" <<'EOF2'
import random, statistics, subprocess, sys, time
blocks, cmds = int(sys.argv[1]), sys.argv[2:]
def once(cmd):
    t = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
def block(cmd):
    return statistics.median([once(cmd) for _ in range(6)][1:])
for c in cmds:
    once(c)
res = [[] for _ in cmds]
for i in range(blocks):
    order = list(range(len(cmds)))[::(-1 if i % 2 else 1)]
    order = order[i % len(cmds):] + order[:i % len(cmds)]
    row = {j: block(cmds[j]) for j in order}
    for j in range(len(cmds)):
        res[j].append(row[j])
m = statistics.median
print("  unconfined %.2f ms" % m(res[0]))
for j, what in ((1, "a one-rule filter"), (2, "the default profile")):
    d = [b - a for a, b in zip(res[0], res[j])]
    boot = sorted(m(random.choices(d, k=len(d))) for _ in range(2000))
    print("  %s: %.2f ms, adds %.2f ms (95%% interval %.2f..%.2f)%s" % (
        what, m(res[j]), m(d), boot[50], boot[1949], "   (target <= 1)" if j == 2 else ""))
EOF2
    # what loading the cached filter costs the kernel (JIT included), in a
    # child of a small process: the largest filter in the cache is the default
    local bpf
    bpf=$(ls -S "$WORK/data/seccomp/"*.bpf | head -1)
    python3 - "$bpf" <<'EOF2'
import ctypes, os, statistics, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
data = open(sys.argv[1], "rb").read()
buf = ctypes.create_string_buffer(data, len(data))
prog = Fprog(len(data) // 8, ctypes.cast(buf, ctypes.c_void_p))
took = []
for _ in range(200):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        t = time.perf_counter_ns()
        rc = libc.syscall(317, 1, 0, ctypes.byref(prog))  # seccomp(SET_MODE_FILTER)
        os.write(w, struct.pack("qq", rc, time.perf_counter_ns() - t))
        os._exit(0)
    os.close(w)
    rc, ns = struct.unpack("qq", os.read(r, 16))
    os.close(r)
    os.waitpid(pid, 0)
    if rc == 0:
        took.append(ns / 1000)
print("  seccomp() of the default profile's filter (%d instructions): median %.0f us of 200 loads" % (len(data) // 8, statistics.median(took)))
EOF2
}

# A gzip layer of about 200 MB of mixed files (bench/make_layer.py), made once.
bench_unpack() {
    local layer=$OUT/layer-200mb.tar.gz
    if [ ! -f "$layer" ]; then
        echo "building $layer (once)..."
        python3 bench/make_layer.py "$layer"
    fi
    local size; size=$(du -m "$layer" | cut -f1)
    local t_tar t_mr where dest
    # on this disk (file creation bound) and on tmpfs (what the CPU does)
    for where in disk tmpfs; do
        if [ $where = disk ]; then dest=$WORK/u; else dest=/dev/shm/minirun-bench-u$$; fi
        # On a disk, whichever runs second finds it busier (write-back of
        # the first): measure in both orders and average.
        local prep="rm -rf $dest; mkdir -p $dest; sync"
        local tar1 mr1 mr2 tar2
        tar1=$(RUNS=5 WARMUP=1 measure unpack-tar-$where-1 --prepare "$prep" "tar -C $dest -xzf $layer")
        mr1=$(RUNS=5 WARMUP=1 measure unpack-minirun-$where-1 --prepare "$prep" "$UNPACK $layer $dest 2>/dev/null")
        mr2=$(RUNS=5 WARMUP=1 measure unpack-minirun-$where-2 --prepare "$prep" "$UNPACK $layer $dest 2>/dev/null")
        tar2=$(RUNS=5 WARMUP=1 measure unpack-tar-$where-2 --prepare "$prep" "tar -C $dest -xzf $layer")
        t_tar=$(calc "($tar1+$tar2)/2")
        t_mr=$(calc "($mr1+$mr2)/2")
        rm -rf "$dest"
        echo "unpack of a ${size} MB gzip layer (about 200 MB of files) on $where, medians of 5 in both orders, averaged:"
        echo "  tar xzf  ${t_tar} ms"
        echo "  minirun  ${t_mr} ms"
        echo "  ratio    $(calc "$t_mr/$t_tar") x tar   (target <= 1.0)"
    done
}

bench_net() {
    sandbox
    load_busybox
    local none bridge
    inhost $M run --rm --net bridge busybox true   # creates the bridge and table once
    read -r none bridge < <(pair run-net-none "nsenter --net=/run/netns/$NS-host $M run --rm --net none busybox true" \
        run-net-bridge "nsenter --net=/run/netns/$NS-host $M run --rm --net bridge busybox true")
    echo "run --rm busybox true, --net bridge vs --net none, median of $RUNS (4 rounds, A B B A A B B A):"
    echo "  none    ${none} ms"
    echo "  bridge  ${bridge} ms"
    echo "  the bridge adds $(calc "$bridge-$none") ms   (target <= 10)"
    if command -v podman >/dev/null; then
        podman load -i "$WORK/busybox.tar" >/dev/null 2>&1 || true   # as localhost/busybox
        local pn pb
        # runc: Debian's crun refuses cgroup v1 hybrid hosts; explicit
        # ulimits: podman's defaults exceed what such hosts allow
        local P="nsenter --net=/run/netns/$NS-host podman --runtime runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
        read -r pn pb < <(pair podman-net-none "$P --network none localhost/busybox true" \
            podman-net-bridge "$P --network bridge localhost/busybox true")
        echo "  podman: none ${pn} ms, bridge ${pb} ms, adds $(calc "$pb-$pn") ms"
    else
        echo "  (podman not installed: apt-get install podman to compare)"
    fi
}

# HTTP/1.0 requests per second (a new connection each) to HOST:PORT from
# the outside namespace, for 3 s. Each request is a full exchange: bare
# connect/close pairs would only measure busybox httpd's accept backlog.
conn_rate() {
    inout python3 - "$1" "$2" <<'EOF'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
n, end = 0, time.time() + 3
while time.time() < end:
    s = socket.create_connection((host, port), timeout=2)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    n += 1
print("%.0f" % (n / 3))
EOF
}

bench_ports() {
    sandbox
    load_busybox
    inhost $M run --rm --net bridge busybox true
    local plain pub
    read -r plain pub < <(pair run-bridge "nsenter --net=/run/netns/$NS-host $M run --rm --net bridge busybox true" \
        run-bridge-publish "nsenter --net=/run/netns/$NS-host $M run --rm --net bridge -p 18080:80 busybox true")
    echo "run --rm busybox true, -p 18080:80 vs plain bridge, median of $RUNS (4 rounds, A B B A A B B A):"
    echo "  bridge      ${plain} ms"
    echo "  bridge -p   ${pub} ms"
    echo "  -p adds $(calc "$pub-$plain") ms   (target <= 2)"

    # throughput: iperf3 server in the container's network namespace
    inhost $M run -d --name srv -p 5201:5201 busybox sleep 3600 >/dev/null
    local netns ip
    netns=$(inhost $M inspect srv | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["netns_path"])')
    ip=$(inhost $M inspect srv | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["ip"])')
    nsenter --net="$netns" iperf3 -s -p 5201 -D
    sleep 0.3
    ip -n "$NS-out" route add "${ip%.*}.0/24" via 198.18.0.1   # bench only: a direct path for comparison
    local nat direct
    nat=$(inout iperf3 -c 198.18.0.1 -p 5201 -t 5 -J | python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
    direct=$(inout iperf3 -c "$ip" -p 5201 -t 5 -J | python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
    echo "TCP throughput from outside, iperf3 5 s:"
    echo "  through the published port  ${nat} Mbit/s"
    echo "  straight to ${ip}       ${direct} Mbit/s"
    echo "  ratio $(calc "$nat/$direct")   (target >= 0.90)"

    # connection rate with 1 and with 1,000 published ports
    inhost $M run -d --name web -p 8080:80 busybox httpd -f -p 80 -h /var/www >/dev/null
    sleep 0.3
    local r1 r1000
    r1=$(conn_rate 198.18.0.1 8080)
    inhost $M run -d --name many -p 20000-20999:20000-20999 busybox sleep 3600 >/dev/null
    r1000=$(conn_rate 198.18.0.1 8080)
    echo "HTTP requests/s (one connection each) to a published port from outside (3 s):"
    echo "  with 1 published port      ${r1}"
    echo "  with 1,001 published ports ${r1000}"
    echo "  ratio $(calc "$r1000/$r1")   (target: the same within noise)"
}

# netns path of a container, from inspect
netns_of() { inhost $M inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["netns_path"])'; }

bench_usernet() {
    sandbox
    load_busybox
    inhost $M run --rm --net bridge busybox true
    inhost $M network create benchnet >/dev/null
    inhost $M run --rm --net benchnet busybox true
    local plain user
    read -r plain user < <(pair run-default-bridge "nsenter --net=/run/netns/$NS-host $M run --rm --net bridge busybox true" \
        run-user-network "nsenter --net=/run/netns/$NS-host $M run --rm --net benchnet busybox true")
    echo "run --rm busybox true on a user network (embedded DNS bound) vs the default bridge, median of $RUNS (4 rounds, A B B A A B B A):"
    echo "  default bridge  ${plain} ms"
    echo "  user network    ${user} ms"
    echo "  the user network adds $(calc "$user-$plain") ms"

    inhost $M run -d --name dnsa --net benchnet busybox sleep 3600 >/dev/null
    inhost $M run -d --name dnsb --net benchnet busybox sleep 3600 >/dev/null
    local mine
    mine=$(nsenter --net="$(netns_of dnsa)" python3 bench/dns_query.py 127.0.0.11 dnsb 3000)
    echo "name lookups of a peer container (3000 sequential UDP queries):"
    echo "  minirun's embedded DNS   median ${mine% *} us, ${mine#* } queries/s"
    if command -v podman >/dev/null && command -v /usr/lib/podman/aardvark-dns >/dev/null; then
        local P="nsenter --net=/run/netns/$NS-host podman --runtime runc"
        local U="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
        podman load -i "$WORK/busybox.tar" >/dev/null 2>&1 || true   # as localhost/busybox
        $P network create --subnet 10.99.0.0/24 mrbench >/dev/null
        $P run -d $U --network mrbench --name mrbench-a localhost/busybox sleep 3600 >/dev/null
        $P run -d $U --network mrbench --name mrbench-b localhost/busybox sleep 3600 >/dev/null
        local key theirs
        key=$($P inspect -f '{{.NetworkSettings.SandboxKey}}' mrbench-a)
        theirs=$(nsenter --net="$key" python3 bench/dns_query.py 10.99.0.1 mrbench-b 3000)
        echo "  podman's aardvark-dns    median ${theirs% *} us, ${theirs#* } queries/s"
        echo "  latency ratio minirun/podman $(calc "${mine% *}/${theirs% *}")"
        $P rm -f -t 0 mrbench-a mrbench-b >/dev/null 2>&1
        $P network rm mrbench >/dev/null 2>&1
    else
        echo "  (podman with aardvark-dns not installed: apt-get install podman to compare)"
    fi
    inhost $M rm -f dnsa dnsb >/dev/null
}

# Dual stack vs IPv4 only: the same user network twice (one with --ipv6), run --rm
# busybox true on each, plain and with a published port. The difference is what
# dual stack adds to bridge setup (veth v6 address + route + sysctls, ip6 elements
# in the same transaction) and teardown.
bench_ipv6() {
    sandbox
    ip -n "$NS-host" -6 addr add 2001:db8:18::1/64 dev up0 nodad 2>/dev/null || true
    ip -n "$NS-out" -6 addr add 2001:db8:18::2/64 dev out0 nodad 2>/dev/null || true
    ip -n "$NS-host" -6 route add default via 2001:db8:18::2 2>/dev/null || true
    load_busybox
    inhost $M network create --subnet 10.97.0.0/24 v4only >/dev/null
    inhost $M network create --ipv6 --subnet 10.98.0.0/24 --subnet fd00:98::/64 dual >/dev/null
    inhost $M run --rm --net v4only busybox true
    inhost $M run --rm --net dual busybox true
    local v4 v6 v4p v6p
    read -r v4 v6 < <(pair run-v4only "nsenter --net=/run/netns/$NS-host $M run --rm --net v4only busybox true" \
        run-dual-stack "nsenter --net=/run/netns/$NS-host $M run --rm --net dual busybox true")
    read -r v4p v6p < <(pair run-v4only-publish "nsenter --net=/run/netns/$NS-host $M run --rm --net v4only -p 18080:80 busybox true" \
        run-dual-stack-publish "nsenter --net=/run/netns/$NS-host $M run --rm --net dual -p 18080:80 busybox true")
    echo "run --rm busybox true on a dual-stack vs an IPv4-only user network ($PROFILE build), median of $RUNS (4 rounds, A B B A A B B A):"
    echo "  IPv4 only               ${v4} ms"
    echo "  dual stack              ${v6} ms   (+$(calc "$v6-$v4") ms, ratio $(calc "$v6/$v4"))"
    echo "  IPv4 only  -p 18080:80  ${v4p} ms"
    echo "  dual stack -p 18080:80  ${v6p} ms   (+$(calc "$v6p-$v4p") ms, ratio $(calc "$v6p/$v4p"))"
    local ia ib d
    read -r ia ib d < <(interleave "$((RUNS * 3))" "nsenter --net=/run/netns/$NS-host $M run --rm --net v4only -p 18080:80 busybox true" \
        "nsenter --net=/run/netns/$NS-host $M run --rm --net dual -p 18080:80 busybox true")
    echo "  interleaved, $((RUNS * 3)) pairs with -p: IPv4 only ${ia} ms, dual stack ${ib} ms, median difference ${d} ms"
    echo "  (target: dual stack adds <= 1 ms)"
}

# Issue 16's memory and removal goals: peak RSS of a `run` (/usr/bin/time -v,
# the largest process of the tree), resident memory of the monitor of an idle
# detached container (podman's conmon beside it when podman is installed), and
# `rm -f` of a running container on the bridge with two published ports.
# Issue 16's network goals: what a bridge and a published port add to `run --rm`
# (set-up and teardown, both on the caller's path), and whether that stays flat from
# the 1st to the 500th container on one bridge. A user network with a /16: the
# default bridge is a /24 (253 containers).
bench_bridge() {
    sandbox
    load_busybox
    local N="nsenter --net=/run/netns/$NS-host $M"
    $N network create --subnet 10.90.0.0/16 benchflat >/dev/null
    $N run --rm --net benchflat -p 18080:80 busybox true
    local none="$N run --rm --net none busybox true"
    local pub="$N run --rm --net benchflat -p 18080:80 busybox true"
    local ia ib d
    read -r ia ib d < <(interleave "$((RUNS * 3))" "$none" "$pub")
    echo "run --rm busybox true, --net NET -p 18080:80 vs --net none, $((RUNS * 3)) interleaved pairs:"
    echo "  none ${ia} ms, bridge + -p ${ib} ms: they add ${d} ms   (target <= 3)"
    echo "the same with N containers running on that bridge ($RUNS interleaved pairs each):"
    local n=0 first="" last="" firstd="" lastd=""
    for target in 0 100 200 300 400 500; do
        if [ "$n" -lt "$target" ]; then
            seq $((n + 1)) "$target" | xargs -P 4 -I{} $N run -d --net benchflat --name fill{} busybox sleep 3600 >/dev/null
            n=$target
        fi
        read -r ia ib d < <(interleave "$RUNS" "$none" "$pub")
        echo "  N=$n: none ${ia} ms, bridge + -p ${ib} ms, bridge + -p add ${d} ms"
        [ -n "$first" ] || { first=$ib; firstd=$d; }
        last=$ib; lastd=$d
    done
    echo "  run of the 501st container / of the 1st: $(calc "$last/$first")   (target: flat)"
    echo "  what bridge + -p add, 501st - 1st: $(calc "$lastd-$firstd") ms   (target: flat)"
}
bench_memory() {
    sandbox
    load_busybox
    inhost $M run --rm --net bridge busybox true
    local peak
    peak=$( { /usr/bin/time -v $M run --rm --net none busybox true >/dev/null; } 2>&1 | awk '/Maximum resident/ {print $NF}')
    echo "peak RSS of run --rm --net none busybox true: ${peak} kB"
    inhost $M run -d --name memidle busybox sleep 3600 >/dev/null
    local mon
    mon=$(pgrep -f -- "run -d --name memidle" | head -1)
    # the monitor sheds its set-up pages once the container runs: wait for it
    local i rss=0
    for i in $(seq 50); do
        rss=$(awk '/VmRSS/ {print $2}' /proc/"$mon"/status)
        [ "$rss" -lt 4000 ] && break
        sleep 0.1
    done
    echo "RSS of the monitor of an idle container: ${rss} kB   (target < 2048)"
    inhost $M rm -f memidle >/dev/null
    if command -v podman >/dev/null; then
        podman load -i "$WORK/busybox.tar" >/dev/null 2>&1 || true
        local P="nsenter --net=/run/netns/$NS-host podman --runtime runc"
        $P run -d --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none --name mrbench-idle localhost/busybox sleep 3600 >/dev/null
        local c
        c=$(pgrep -f -- "conmon.*mrbench-idle" | head -1)
        [ -n "$c" ] && echo "  podman's conmon for the same: $(awk '/VmRSS/ {print $2}' /proc/"$c"/status) kB"
        $P rm -f -t 0 mrbench-idle >/dev/null 2>&1
    fi
    local rmf
    rmf=$(measure rm-f-published --prepare "nsenter --net=/run/netns/$NS-host $M run -d --name rmf -p 18080:80 -p 18443:443 busybox sleep 3600 >/dev/null" \
        "nsenter --net=/run/netns/$NS-host $M rm -f rmf")
    echo "rm -f of a running container on the bridge with 2 published ports, median of $RUNS: ${rmf} ms   (target < 20)"
}

case $what in
    bundle) bench_bundle ;;
    image) bench_image ;;
    seccomp) bench_seccomp ;;
    unpack) bench_unpack ;;
    net) bench_net ;;
    ports) bench_ports ;;
    usernet) bench_usernet ;;
    ipv6) bench_ipv6 ;;
    memory) bench_memory ;;
    bridge) bench_bridge ;;
    all) bench_bundle; bench_image; bench_seccomp; bench_unpack; bench_net; bench_ports; bench_usernet; bench_ipv6; bench_memory; bench_bridge ;;
    *) echo "usage: $0 [bundle|image|seccomp|unpack|net|ports|usernet|ipv6|memory|bridge|all]" >&2; exit 2 ;;
esac
