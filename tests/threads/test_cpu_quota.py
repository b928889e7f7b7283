"""A container's CPU limit (xpnet.cpu_quota): the cgroup files of both versions, and a real cgroup where this
machine lets the test make one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet import threads
from xpnet.cpu_quota import CGROUP_ROOT, cpu_quota


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")


def _quota(tmp_path: Path, proc: str, files: dict[str, str]) -> float | None:
    _tree(tmp_path / "fs", files)
    (tmp_path / "cgroup").write_text(proc)
    return cpu_quota(tmp_path / "cgroup", tmp_path / "fs")


def test_v2_takes_the_tightest_quota_on_the_path_up_to_the_root(tmp_path):
    files = {"a/b/c/cpu.max": "max 100000", "a/b/cpu.max": "150000 100000", "a/cpu.max": "400000 100000"}
    assert _quota(tmp_path, "0::/a/b/c\n", files) == 1.5
    assert _quota(tmp_path, "0::/a\n", files) == 4.0


def test_v2_without_a_quota_or_without_the_file_is_none(tmp_path):
    assert _quota(tmp_path, "0::/a\n", {"a/cpu.max": "max 100000"}) is None
    assert _quota(tmp_path, "0::/elsewhere\n", {}) is None


def test_a_container_sees_its_own_cgroup_as_the_root(tmp_path):
    # cgroup v1 in a container: /proc names the host's path, the mount is the container's own cgroup
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "250000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}
    assert _quota(tmp_path, "4:cpu,cpuacct:/docker/0123abcd\n3:memory:/docker/0123abcd\n", files) == 2.5


def test_v1_no_quota_is_minus_one_and_a_link_named_cpu_is_read_too(tmp_path):
    files = {"cpu/x/cpu.cfs_quota_us": "-1", "cpu/x/cpu.cfs_period_us": "100000",
             "cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}
    assert _quota(tmp_path, "2:cpu:/x\n", files) is None
    _tree(tmp_path / "fs", {"cpu/x/cpu.cfs_quota_us": "50000"})
    assert _quota(tmp_path, "2:cpuacct,cpu:/x\n", {}) == 0.5  # mounted as cpu,cpuacct elsewhere: the cpu link


def test_no_cgroups_to_read_is_none(tmp_path):
    assert cpu_quota(tmp_path / "missing", tmp_path) is None


@pytest.mark.parametrize(("cores", "ranks", "quota", "expected"), [
    (8, 1, 2.0, 2),
    (8, 1, 1.5, 2),  # rounded up, as other runtimes count a fractional limit
    (8, 2, 2.0, 1),  # the ranks of a container share its quota
    (2, 1, 0.5, 1),
    (2, 1, 16.0, 2),  # never more than the cores
])
def test_auto_counts_no_more_threads_than_the_quota_allows(cores, ranks, quota, expected):
    assert threads.auto_threads(cores, ranks, cores, {}, quota) == expected


def test_a_pinned_count_above_the_quota_is_lowered_to_it():
    with pytest.warns(UserWarning, match=r"than the 1 core this process may use \(a CPU quota of 0.5\)"):
        assert threads.parse_setting("2", environ={}, cores=2, quota=0.5).count == 1


QUOTA_PROBE = "from xpnet import threads, cpu_quota; print(threads.parse_setting(None, environ={}).count, " \
              "cpu_quota.cpu_quota())"


def _quota_cgroup() -> Path | None:
    """A new cgroup allowing one CPU's time per period (v1's cpu controller or v2's), or None where this machine
    does not let the test make one (not root, no writable cgroup file system, no cpu controller)."""
    for parent, files in ((CGROUP_ROOT / "cpu", {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}),
                          (CGROUP_ROOT, {"cpu.max": "100000 100000"})):
        folder = parent / f"xpnet-test-{os.getpid()}"
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            for name, text in files.items():
                (folder / name).write_text(text)
            return folder
        except OSError:
            folder.rmdir()
    return None


def test_a_process_in_a_cgroup_of_one_cpu_runs_one_thread():
    folder = _quota_cgroup()
    if folder is None:
        pytest.skip("cannot make a cgroup with a CPU quota here (needs root and a writable cgroup cpu controller)")
    try:
        # the shell moves itself into the cgroup, then becomes the probe
        done = subprocess.run(["sh", "-c", f'echo $$ > "{folder}/cgroup.procs" && exec "$0" -c "$1"', sys.executable,
                               QUOTA_PROBE], capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k not in threads.LIMIT_VARIABLES})
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["1", "1.0"]
    finally:
        folder.rmdir()
