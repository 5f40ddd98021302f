"""scripts/prerequisites.sh, which `make demo` and `make test` run first: a machine that lacks a
tool is told in one line which, and the command that installs it, before anything is built."""

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prerequisites.sh"


def _check(tmp_path: Path, target: str, tools: list[str]) -> subprocess.CompletedProcess:
    """The script run on a PATH that holds `tools` (as found here), bash and this Python only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ["bash", *tools]:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python3").symlink_to(Path(sys.base_exec_prefix) / "bin" / "python3.11")
    return subprocess.run(["bash", str(SCRIPT), target], env={"PATH": str(bin_dir)}, capture_output=True,
                          text=True, timeout=60)


def test_a_missing_compiler_stops_make_test_with_one_line_naming_it_and_its_install(tmp_path):
    proc = _check(tmp_path, "test", ["java", "mvn", "chromium"])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "javac" in lines[0] and "sudo apt-get install -y openjdk-17-jdk-headless" in lines[0]
    assert "mvn" not in lines[0].split("install")[0]


def test_make_demo_needs_python_and_java_only(tmp_path):
    assert _check(tmp_path, "demo", ["java"]).returncode == 0


def test_a_machine_without_java_is_told_which_runtime(tmp_path):
    proc = _check(tmp_path, "demo", [])
    assert proc.returncode == 1 and "openjdk-17-jre-headless" in proc.stderr and "java" in proc.stderr
