#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python (idempotent; `apt-get update` runs only when one is missing):
#   prometheus         -> /usr/bin/prometheus + /usr/bin/promtool (rules, rule tests, the local Prometheus server)
#   kubernetes-client  -> /usr/bin/kubectl (`kubectl kustomize` renders the k8s/ overlays offline)
#   chromium           -> /usr/bin/chromium (the web chat's browser test, driven by Playwright; never a downloaded one)
#   fonts-wqy-zenhei   -> a CJK font, so the browser renders (and screenshots) Chinese text
# Usage: scripts/system_deps.sh [--check]   (--check: only report what is missing; exit 1 if anything is)
#
# Quiet: apt/dpkg write ~150 lines for these packages; they go to $SUIQA_HOME/logs/system-deps.log (default
# var/logs/) and the terminal gets one line saying so (the log's tail only when apt fails).
# Debian's prometheus package enables and starts its own prometheus.service on install: on a real host that is a
# second Prometheus on :9090 beside the one `suiqa up --with-prometheus` starts. While installing, a policy-rc.d
# that refuses every start (exit 101, Debian policy's "action forbidden") keeps it from starting; afterwards the
# unit is disabled (systemctl when systemd is the init, else deb-systemd-helper + update-rc.d), so it is neither
# running nor enabled. We only run /usr/bin/prometheus and promtool ourselves.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=${SYSTEM_DEPS_LOG:-${SUIQA_HOME:-$ROOT/var}/logs/system-deps.log}
POLICY_RC_D=${POLICY_RC_D:-/usr/sbin/policy-rc.d}   # read by invoke-rc.d and deb-systemd-invoke
SUDO=${SUDO-}
declare -A NEEDS=([prometheus]=/usr/bin/promtool [kubernetes-client]=kubectl [chromium]=/usr/bin/chromium
                  [fonts-wqy-zenhei]=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc)

missing_packages() {
    local pkg
    for pkg in "${!NEEDS[@]}"; do
        command -v "${NEEDS[$pkg]}" >/dev/null 2>&1 || [ -e "${NEEDS[$pkg]}" ] || echo "$pkg"
    done
}

# A policy-rc.d refusing every service start, removed on exit; an existing one (the admin's) is left as it is.
forbid_service_starts() {
    [ -e "$POLICY_RC_D" ] && return 0
    printf '#!/bin/sh\n# scripts/system_deps.sh: no service starts while it installs packages\nexit 101\n' \
        | $SUDO tee "$POLICY_RC_D" >/dev/null
    $SUDO chmod 755 "$POLICY_RC_D"
    trap '$SUDO rm -f "$POLICY_RC_D"' EXIT
}

# Debian's prometheus.service: stopped and not enabled (see the header).
disable_prometheus_unit() {
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now prometheus.service >>"$LOG" 2>&1 || true
    else
        $SUDO deb-systemd-helper disable prometheus.service >>"$LOG" 2>&1 || true
        $SUDO update-rc.d prometheus disable >>"$LOG" 2>&1 || true
    fi
    echo "system deps: Debian's prometheus.service left disabled (the stack runs its own Prometheus)"
}

install_packages() {
    mkdir -p "$(dirname "$LOG")"
    echo "system deps: installing $* (apt/dpkg output: $LOG)"
    forbid_service_starts
    # --no-install-recommends: the prometheus package recommends exporters we do not need
    if ! { $SUDO apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"; } \
           >>"$LOG" 2>&1; then
        echo "system deps: apt-get failed; the end of $LOG:" >&2
        tail -n 20 "$LOG" >&2
        return 1
    fi
    case " $* " in *" prometheus "*) disable_prometheus_unit ;; esac
}

main() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ ${#missing[@]} -eq 0 ]; then
        echo "system deps: all present (promtool, kubectl, chromium, CJK font)"
        return 0
    fi
    if [ "${1:-}" = "--check" ]; then
        echo "system deps missing: ${missing[*]}" >&2
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "system deps: need root or sudo to install: ${missing[*]}" >&2
            return 1
        }
        SUDO="sudo"
    fi
    install_packages "${missing[@]}"
}

# Sourced (tests/unit/test_system_deps.py), only the functions are defined.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
