"""bin/test on a machine without Chromium: it installs it where the system can (apt-get as root,
or through a sudo that asks no password) and otherwise stops before setting anything up, naming
exactly what to install. Run against a copy of the script in an empty tree, with fake ``id``,
``apt-get`` and ``sudo`` on a PATH holding nothing else, so nothing is really installed; the
services check that follows fails on a closed port, which ends each run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke.processes import ROOT, free_port

pytestmark = pytest.mark.smoke

FAKE_APT = """#!/bin/bash
echo "$@" >> "$FAKE_LOG"
if [ "$1" = install ]; then
  for binary in "$CHROMIUM_BINARY" "$CHROMEDRIVER_BINARY"; do
    echo '#!/bin/bash' > "$binary"; /bin/chmod +x "$binary"
  done
fi
"""


def _tree(tmp_path: Path, *, uid: int, apt: bool, sudo: str | None) -> tuple[Path, dict]:
    """A copy of bin/test, and the environment to run it in."""
    project, tools = tmp_path / "project", tmp_path / "tools"
    (project / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "bin" / "test", project / "bin" / "test")
    tools.mkdir()
    for name in ("bash", "dirname", "basename", "env", "true"):
        (tools / name).symlink_to(shutil.which(name))
    (tools / "python3").symlink_to(sys.executable)
    (tools / "npm").write_text("#!/bin/bash\nexit 0\n")
    (tools / "id").write_text(f"#!/bin/bash\necho {uid}\n")
    if apt:
        (tools / "apt-get").write_text(FAKE_APT)
    if sudo == "works":  # `sudo -n true` succeeds: no password needed
        (tools / "sudo").write_text(
            '#!/bin/bash\n[ "$1" = -n ] && shift\necho sudo >> "$FAKE_LOG"\nexec "$@"\n'
        )
    elif sudo == "asks":
        (tools / "sudo").write_text("#!/bin/bash\nexit 1\n")
    for tool in tools.iterdir():
        if not tool.is_symlink():
            tool.chmod(0o755)
    closed = free_port()  # nothing listens there
    env = {
        "PATH": str(tools),
        "HOME": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "CHROMIUM_BINARY": str(tmp_path / "chromium"),
        "CHROMEDRIVER_BINARY": str(tmp_path / "chromedriver"),
        "TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/postgres",
        "TEST_REDIS_URL": os.environ["REDIS_URL"],
    }
    return project, env


def _run(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(project / "bin" / "test"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _calls(env: dict) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_as_root_it_installs_chromium_with_apt_get(tmp_path: Path) -> None:
    project, env = _tree(tmp_path, uid=0, apt=True, sudo=None)
    result = _run(project, env)
    assert _calls(env) == ["update -qq", "install -y -qq chromium chromium-driver"]
    assert "running apt-get install -y chromium chromium-driver" in result.stderr
    # Then on to the next step, which stops this run: no database on that port.
    assert result.returncode == 1
    assert "PostgreSQL is not reachable at 127.0.0.1:" in result.stderr
    assert not (project / ".venv").exists()


def test_without_root_it_uses_sudo_when_sudo_asks_no_password(tmp_path: Path) -> None:
    project, env = _tree(tmp_path, uid=1000, apt=True, sudo="works")
    result = _run(project, env)
    assert "running sudo apt-get install -y chromium chromium-driver" in result.stderr
    assert "install -y -qq chromium chromium-driver" in _calls(env)


def test_when_it_cannot_install_it_stops_first_naming_what_to_install(tmp_path: Path) -> None:
    project, env = _tree(tmp_path, uid=1000, apt=True, sudo="asks")
    result = _run(project, env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"bin/test: missing Chromium and its driver ({tmp_path}/chromium, {tmp_path}/chromedriver)."
        " Install them, then run bin/test again: sudo apt-get install -y chromium chromium-driver"
    )
    assert _calls(env) == [] and not (project / ".venv").exists()


def test_without_apt_get_it_says_what_the_package_manager_must_provide(tmp_path: Path) -> None:
    project, env = _tree(tmp_path, uid=0, apt=False, sudo=None)
    result = _run(project, env)
    assert result.returncode == 1
    assert "This system has no apt-get" in result.stderr
    assert "chromium and chromedriver" in result.stderr and "CHROMIUM_BINARY" in result.stderr


def test_a_run_of_other_tests_needs_no_browser(tmp_path: Path) -> None:
    project, env = _tree(tmp_path, uid=1000, apt=True, sudo="asks")
    (project / "tests" / "domain").mkdir(parents=True)
    result = _run(project, env, "tests/domain")
    assert _calls(env) == []
    assert "Chromium" not in result.stderr
    assert "PostgreSQL is not reachable" in result.stderr
