"""The CPU time this process's control groups allow it: a container's CPU limit.

Docker's ``--cpus``, a Kubernetes CPU limit and systemd's ``CPUQuota=`` give the process's cgroup a bandwidth
quota: so many microseconds of CPU time per period, shared by all its threads. Its CPU affinity still names every
core of the machine, so a thread count from the affinity alone oversubscribes the quota: the threads run until the
quota is spent, then all wait for the next period. Under a quota of one CPU on the 2-core Intel Xeon VM (2026-12-06,
three alternating rounds) an epoch of ``xpnet train mnist`` took 2.2-2.3 s on 2 threads and 1.8-1.9 s on one; the
thread governor kept 2, because the throttled wait falls in one step per period, which its trimmed mean leaves out
as a one-off. ``xpnet.threads`` therefore counts no more threads than the quota's CPUs.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def cpu_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs' worth of time per period that the tightest quota on this process's cgroup or any cgroup above it
    allows (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``); None without a quota or
    without cgroups to read (not Linux, no cgroup file system)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        fields = line.split(":", 2)  # hierarchy:controllers:path
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if not controllers:  # the v2 hierarchy
            quotas += [_v2_quota(folder) for folder in _along(root, path)]
        elif "cpu" in controllers.split(","):  # v1, mounted under its controllers' names or a "cpu" link to them
            for mount in {root / controllers, root / "cpu"}:
                quotas += [_v1_quota(folder) for folder in _along(mount, path)]
    found = [quota for quota in quotas if quota is not None]
    return min(found) if found else None


def _along(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder under ``mount`` and every folder above it up to ``mount``, those that exist: a quota on
    any of them applies. (In a container the cgroup named in /proc may be the mount itself, which is then all.)"""
    relative = PurePosixPath(path.lstrip("/"))
    return [mount / folder for folder in (relative, *relative.parents) if (mount / folder).is_dir()]


def _read(file: Path) -> str | None:
    try:
        return file.read_text().strip()
    except OSError:
        return None


def _v2_quota(folder: Path) -> float | None:
    """``cpu.max``: "QUOTA PERIOD", or "max PERIOD" for none."""
    text = _read(folder / "cpu.max")
    quota, _, period = (text or "").partition(" ")
    return _cpus(quota, period)


def _v1_quota(folder: Path) -> float | None:
    """``cpu.cfs_quota_us`` (-1 for none) over ``cpu.cfs_period_us``."""
    return _cpus(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _cpus(quota: str | None, period: str | None) -> float | None:
    """quota / period where both are positive whole numbers, else None (no quota)."""
    if not (quota or "").isdigit() or not (period or "").isdigit() or int(quota) <= 0 or int(period) <= 0:
        return None
    return int(quota) / int(period)
