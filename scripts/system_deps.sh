#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python (idempotent; `apt-get update` runs only when one is missing):
#   prometheus         -> /usr/bin/prometheus + /usr/bin/promtool (rules, rule tests, the local Prometheus server)
#   kubernetes-client  -> /usr/bin/kubectl (`kubectl kustomize` renders the k8s/ overlays offline)
#   chromium           -> /usr/bin/chromium (the web chat's browser test, driven by Playwright; never a downloaded one)
#   fonts-wqy-zenhei   -> a CJK font, so the browser renders (and screenshots) Chinese text
# Usage: scripts/system_deps.sh [--check]   (--check: only report what is missing; exit 1 if anything is)
set -euo pipefail

declare -A NEEDS=([prometheus]=/usr/bin/promtool [kubernetes-client]=kubectl [chromium]=/usr/bin/chromium
                  [fonts-wqy-zenhei]=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc)
missing=()
for pkg in "${!NEEDS[@]}"; do
    command -v "${NEEDS[$pkg]}" >/dev/null 2>&1 || [ -e "${NEEDS[$pkg]}" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system deps: all present (promtool, kubectl, chromium, CJK font)"
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "system deps missing: ${missing[*]}" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "system deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "system deps: installing ${missing[*]}"
$SUDO apt-get update -qq
# --no-install-recommends: the prometheus package recommends exporters we do not need
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
