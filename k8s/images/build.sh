#!/usr/bin/env bash
# `make images`: build every image the manifests name with podman, from the repository's Dockerfiles, and print
# each image's size and build time. Layers are cached (podman build --layers): the dependency layers depend on
# pyproject.toml only, so a code change rebuilds the last two layers.
#   NO_CACHE=1 (a cold build, for timing), TAG (0.1.0), REGISTRY (sui-qa: the name the cpu overlay uses), BASE_IMAGE (the Debian-made base, base.sh),
#   HOST_CA (CA bundle pip trusts during the build; default the host's),
#   TORCH_WHEELS (a folder holding torch-2.13.0+cpu's wheel, mounted read-only into the build; default /opt/wheels
#   when it has one), PIP_EXTRA_INDEX_URL (the PyTorch CPU index instead, where it is reachable).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
eval "$(bash "$HERE/podman-setup.sh")"
TAG="${TAG:-0.1.0}"
REGISTRY="${REGISTRY:-sui-qa}"
export BASE_IMAGE="${BASE_IMAGE:-localhost/sui-qa-base:bookworm-py3.11}"
TORCH_WHEELS="${TORCH_WHEELS:-/opt/wheels}"
GPU_BASE="$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' "$HERE/Dockerfile.gpu" | head -1)"

report() {  # image, seconds
  printf '%-28s %8s  built in %4d s\n' "$1" "$(podman image inspect --format '{{.Size}}' "$1" | numfmt --to=iec)" "$2"
}

start=$SECONDS
bash "$HERE/base.sh"
base_s=$((SECONDS - start))

args=(--layers ${NO_CACHE:+--no-cache} --network=host --pull=never -f "$HERE/Dockerfile.cpu" --build-arg "BASE_IMAGE=$BASE_IMAGE"
      --ignorefile "$HERE/Dockerfile.cpu.dockerignore")
if [[ -n "${PIP_EXTRA_INDEX_URL:-}" ]]; then
  args+=(--build-arg "PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL")
elif compgen -G "$TORCH_WHEELS/torch-2.13.0+cpu-*.whl" >/dev/null; then
  args+=(--volume "$TORCH_WHEELS:/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels)
else
  echo "no CPU torch source: set PIP_EXTRA_INDEX_URL (https://download.pytorch.org/whl/cpu) or TORCH_WHEELS" >&2
  exit 1
fi
# the host's CA bundle (PyPI may sit behind a TLS-inspecting proxy whose CA only the host trusts)
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
[[ -f "$HOST_CA" ]] && args+=(--volume "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
start=$SECONDS
nice -n 10 podman build "${args[@]}" -t "$REGISTRY/sui-qa-cpu:$TAG" "$ROOT"
cpu_s=$((SECONDS - start))

echo "== images =="
report "$BASE_IMAGE" "$base_s"
report "localhost/$REGISTRY/sui-qa-cpu:$TAG" "$cpu_s"
if podman image exists "$GPU_BASE"; then
  start=$SECONDS
  nice -n 10 podman build --layers --network=host --pull=never -f "$HERE/Dockerfile.gpu" \
    --ignorefile "$HERE/Dockerfile.gpu.dockerignore" -t "$REGISTRY/sui-qa-gpu:$TAG" "$ROOT"
  report "localhost/$REGISTRY/sui-qa-gpu:$TAG" $((SECONDS - start))
else
  echo "sui-qa-gpu: NOT BUILT: its base $GPU_BASE is not here and no registry is reachable to pull it" \
       "(load it with \`podman load\` and rerun)"
fi
