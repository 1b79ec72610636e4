#!/usr/bin/env bash
# Idempotent: the Debian packages `make images` and the pod play need, and the podman settings this repository
# uses (k8s/images/containers.conf, through CONTAINERS_CONF; nothing global is changed). Prints the export line.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
need=()
for bin in podman:podman runc:runc mmdebstrap:mmdebstrap buildah:buildah newuidmap:uidmap; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need+=("${bin##*:}")
done
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then echo "missing Debian packages: ${need[*]} (run as root or apt-get install them)" >&2; exit 1; fi
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
export CONTAINERS_CONF="$HERE/containers.conf"
# a container must start with these settings (crun / ulimits failures show here, not in the middle of a build)
if ! podman info --format '{{.Host.OCIRuntime.Name}}' | grep -qx runc; then
  echo "podman does not use runc with $CONTAINERS_CONF" >&2; exit 1
fi
echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
