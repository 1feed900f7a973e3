#!/usr/bin/env bash
# Pull benchmark, run by hand as root (never in CI): a ~100 MB (compressed)
# multi-layer image from a local docker-registry on 127.0.0.1, pulled
#   1. by minirun into a fresh store,
#   2. by `skopeo copy` to a local OCI layout plus `minirun load` of it (unpack),
#   3. by `podman pull` into its own storage root (overlay driver),
# and 4. minirun pulling it again when every layer is in the store.
#
# The image: the busybox fixture plus four layers cut from this machine's
# /usr/lib/x86_64-linux-gnu (shared libraries compress about as real images do).
#
# usage: bench/pull.sh            (needs hyperfine, docker-registry, skopeo, umoci, podman)
#        MINIRUN=path/to/minirun RUNS=5 bench/pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [[ -z "${MINIRUN:-}" ]]; then
    cargo build --release -q -p minirun -p rootfs-fixtures
    MINIRUN=$CARGO_TARGET_DIR/release/minirun
fi
FIXTURES=${FIXTURES:-$CARGO_TARGET_DIR/release/minirun-fixtures}
[[ -x $FIXTURES ]] || cargo build --release -q -p rootfs-fixtures
RUNS=${RUNS:-5}
for tool in hyperfine docker-registry skopeo umoci podman; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

work=$(mktemp -d /tmp/minirun-bench-pull.XXXXXX)
registry_pid=
cleanup() {
    [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
image=127.0.0.1:$port/bench:latest

echo "== building the image" >&2
"$FIXTURES" image "$work/base.tar" --name bench:latest >/dev/null
skopeo --insecure-policy copy --quiet "docker-archive:$work/base.tar" "oci:$work/layout:v0"
umoci unpack --image "$work/layout:v0" "$work/bundle" >/dev/null
mapfile -t libs < <(cd /usr/lib/x86_64-linux-gnu && find . -maxdepth 1 -type f -name '*.so*' -size +100k | sort)
budget=$((240 * 1024 * 1024)) # uncompressed bytes over the four layers
per_layer=$((budget / 4)) layer=1 size=0 tag=v0
mkdir -p "$work/bundle/rootfs/usr/lib/bench/1"
for lib in "${libs[@]}"; do
    (( layer > 4 )) && break
    cp "/usr/lib/x86_64-linux-gnu/$lib" "$work/bundle/rootfs/usr/lib/bench/$layer/"
    size=$((size + $(stat -c %s "/usr/lib/x86_64-linux-gnu/$lib")))
    if (( size >= per_layer )); then
        umoci repack --refresh-bundle --image "$work/layout:v$layer" "$work/bundle" >/dev/null
        tag=v$layer layer=$((layer + 1)) size=0
        mkdir -p "$work/bundle/rootfs/usr/lib/bench/$layer"
    fi
done
if (( layer <= 4 && size > 0 )); then
    umoci repack --refresh-bundle --image "$work/layout:v$layer" "$work/bundle" >/dev/null
    tag=v$layer
fi
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:$tag" "docker://$image"
compressed=$(du -sb "$work/registry" | cut -f1)
layers=$(skopeo inspect --raw --tls-verify=false "docker://$image" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))')
echo "image $image: $layers layers, registry holds $((compressed / 1024 / 1024)) MiB" >&2

echo "== cold pulls" >&2
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$work/cold.md" \
    --prepare "rm -rf $work/store $work/oci $work/podman; sync" \
    -n "minirun pull" "$MINIRUN --data-root $work/store pull -q $image" \
    -n "skopeo copy + minirun load" \
    "skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://$image oci:$work/oci:latest && $MINIRUN --data-root $work/store load -i $work/oci" \
    -n "podman pull" \
    "podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --storage-driver overlay pull -q --tls-verify=false $image"
rm -rf "$work/podman"

echo "== every layer present" >&2
rm -rf "$work/store"
"$MINIRUN" --data-root "$work/store" pull -q "$image" >/dev/null
hyperfine --runs $((RUNS * 4)) --warmup 3 --export-markdown "$work/warm.md" \
    -n "minirun pull (all present)" "$MINIRUN --data-root $work/store pull -q $image"

cat "$work/cold.md" "$work/warm.md"
