"""scripts/system_deps.sh installs quietly and leaves Debian's prometheus.service neither started nor enabled
(issue 26: ~150 apt/dpkg lines in the demo's log; the package's own unit is a second Prometheus on :9090 on a real
host). The script is sourced in bash with stand-ins for apt-get and the init-system tools first on PATH, so nothing
is installed; each stand-in records its arguments, and apt-get records whether a policy-rc.d forbade starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system_deps.sh"
DPKG_NOISE = [f"Selecting previously unselected package lib{i}." for i in range(150)]


def _stand_ins(bin_dir: Path, calls: Path, policy: Path, apt_status: int) -> None:
    bin_dir.mkdir()
    noise = "\n".join(DPKG_NOISE)
    apt = f"""#!/bin/sh
echo "apt-get $*" >> {calls}
if [ "$1" = install ]; then
    if [ -x {policy} ] && {policy} prometheus start; then echo "policy: starts allowed" >> {calls};
    else echo "policy: starts forbidden ($?)" >> {calls}; fi
    cat <<'EOF'
{noise}
EOF
    exit {apt_status}
fi
"""
    (bin_dir / "apt-get").write_text(apt)
    for tool in ("deb-systemd-helper", "update-rc.d", "systemctl"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)


def _install(tmp_path: Path, packages: str, apt_status: int = 0) -> tuple[subprocess.CompletedProcess, str, Path]:
    calls, policy, log = tmp_path / "calls", tmp_path / "policy-rc.d", tmp_path / "logs" / "system-deps.log"
    _stand_ins(tmp_path / "bin", calls, policy, apt_status)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SUDO": "",
           "POLICY_RC_D": str(policy), "SYSTEM_DEPS_LOG": str(log)}
    out = subprocess.run(["bash", "-c", f'source "{SCRIPT}" && install_packages {packages}'],
                         capture_output=True, text=True, env=env, timeout=60)
    assert not policy.exists(), "the temporary policy-rc.d outlives the install"
    return out, calls.read_text() if calls.exists() else "", log


def test_apt_output_goes_to_the_log_and_the_terminal_gets_one_line_naming_it(tmp_path):
    out, calls, log = _install(tmp_path, "kubernetes-client chromium")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"system deps: installing kubernetes-client chromium (apt/dpkg output: {log})"]
    assert out.stderr == ""
    assert DPKG_NOISE[0] in log.read_text() and DPKG_NOISE[-1] in log.read_text()
    assert "apt-get install -y -qq --no-install-recommends kubernetes-client chromium" in calls
    assert "policy: starts forbidden (101)" in calls
    assert "prometheus" not in calls  # no unit touched when prometheus is not installed


def test_debian_prometheus_unit_is_left_disabled_and_was_never_allowed_to_start(tmp_path):
    out, calls, _ = _install(tmp_path, "prometheus")
    assert out.returncode == 0, out.stderr
    assert "policy: starts forbidden (101)" in calls
    assert ("systemctl disable --now prometheus.service" in calls
            or ("deb-systemd-helper disable prometheus.service" in calls and "update-rc.d prometheus disable" in calls))
    assert calls.index("apt-get install") < calls.index("disable")
    assert out.stdout.splitlines()[-1].startswith("system deps: Debian's prometheus.service left disabled")


def test_a_failing_apt_shows_the_end_of_the_log_and_fails(tmp_path):
    out, calls, log = _install(tmp_path, "prometheus", apt_status=100)
    assert out.returncode == 1
    assert f"apt-get failed; the end of {log}" in out.stderr and DPKG_NOISE[-1] in out.stderr
    assert DPKG_NOISE[0] not in out.stderr  # the tail, not the flood
    assert "disable" not in calls


def test_an_existing_policy_rc_d_is_left_alone(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    env = {**os.environ, "SUDO": "", "POLICY_RC_D": str(policy)}
    out = subprocess.run(["bash", "-c", f'source "{SCRIPT}" && forbid_service_starts'], env=env, text=True,
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and policy.read_text() == "#!/bin/sh\nexit 0\n"
