#!/usr/bin/env bash
# The base image of Dockerfile.cpu, made from Debian packages only (no registry base can be pulled here):
# mmdebstrap (bookworm, minbase) -> rootfs tarball -> `podman import`, tagged $BASE_IMAGE. It stands in for
# python:3.11-slim-bookworm: Debian's python3 (3.11) in a venv at /opt/python that is first on PATH, so `python3`,
# `python` and `pip` are there and pip may install (PEP 668 blocks the system interpreter), with the C headers
# python:slim has too (torch.compile's inductor builds vLLM's CPU kernels against Python.h). Skipped when the image
# exists with this script's hash (label suiqa.base.hash): edit the script and it is rebuilt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE_IMAGE="${BASE_IMAGE:-localhost/sui-qa-base:bookworm-py3.11}"
WORK="${IMAGES_WORK:-$HERE/../../var/images}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=passwd,ca-certificates,python3,python3-venv,libpython3.11-dev
hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ "$(podman image inspect --format '{{index .Labels "suiqa.base.hash"}}' "$BASE_IMAGE" 2>/dev/null)" == "$hash" ]]; then
  echo "base: $BASE_IMAGE is up to date ($hash)"; exit 0
fi
mkdir -p "$WORK"
tarball="$WORK/base-$SUITE-$hash.tar"
start=$SECONDS
# the mirror here is a snapshot (Valid-Until in the past): the same options the host's apt uses
mmdebstrap --variant=minbase --include="$PACKAGES" \
  --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='chroot "$1" python3 -m venv /opt/python' \
  --customize-hook='chroot "$1" /opt/python/bin/python -m pip --version' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$tarball" "$MIRROR" "deb ${MIRROR%/debian}/debian-security $SUITE-security main"
podman import \
  --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL suiqa.base.hash=$hash" \
  --change "LABEL org.opencontainers.image.description=Debian $SUITE python3 from Debian packages (k8s/images/base.sh)" \
  --change 'CMD ["python3"]' \
  "$tarball" "$BASE_IMAGE" >/dev/null
rm -f "$tarball"
echo "base: $BASE_IMAGE built in $((SECONDS - start)) s, $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec)"
