"""Short scheduler slices for the compute threads (xpnet.scheduling): the setting, what the kernel grants each
thread (read back from /proc), what is left alone, and the command line's report and refusal."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import assert_clean_error, xpnet

from xpnet import scheduling
from xpnet.errors import ConfigError


def kernel_grants_custom_slices() -> bool:
    """Linux 6.12 or later on a machine whose syscall numbers xpnet knows (the thread's slice is in /proc)."""
    if sys.platform != "linux" or platform.machine() not in scheduling.SYSCALLS:
        return False
    with open("/proc/self/sched") as sched:
        has_slice = "se.slice" in sched.read()
    return has_slice and tuple(int(part) for part in platform.release().split(".")[:2]) >= (6, 12)


needs_custom_slices = pytest.mark.skipif(not kernel_grants_custom_slices(),
                                         reason="the kernel keeps no custom slices (Linux 6.12+ on x86_64/aarch64)")

PROBE = textwrap.dedent("""
    import json, os, sys, threading
    setup = sys.argv[1]
    if setup == "nice":
        os.nice(3)
    if setup == "idle policy":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    def sched(tid):
        with open(f"/proc/self/task/{tid}/sched") as f:  # no se.slice for SCHED_IDLE
            fields = {key.strip(): value for key, value in (line.split(":", 1) for line in f if ":" in line)}
        return {"slice": int(fields.get("se.slice", -1)), "policy": os.sched_getscheduler(tid),
                "nice": os.getpriority(os.PRIO_PROCESS, tid)}
    def each_thread():
        found = []
        for tid in os.listdir("/proc/self/task"):
            try:
                found.append(sched(int(tid)))
            except FileNotFoundError:  # a thread that ended since the listing
                pass
        return found
    from xpnet import threads, scheduling
    # a known start: the kernel's slices, or a short one as if inherited (the test process passes its own on)
    scheduling.apply_slice(250 if setup == "inherited" else None)
    before = sched(threading.get_native_id())
    threads.configure()
    later = []
    worker = threading.Thread(target=lambda: later.append(sched(threading.get_native_id())))
    worker.start(); worker.join()
    print(json.dumps({"before": before, "after": each_thread(),
                      "started later": later[0], "status": scheduling.slice_status()}))
""")


def probe(setup: str, **environ: str) -> dict:
    """Each thread's slice, policy and nice value in a fresh process, before and after ``threads.configure()``."""
    done = subprocess.run([sys.executable, "-c", PROBE, setup], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k != scheduling.SLICE_ENV}, **environ})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_slice_setting_defaults_to_the_shortest_and_refuses_what_linux_would():
    assert scheduling.requested_slice_us({}) == scheduling.DEFAULT_SLICE_US == 100
    assert scheduling.requested_slice_us({"XPNET_SCHED_SLICE": " 250 "}) == 250
    assert scheduling.requested_slice_us({"XPNET_SCHED_SLICE": "OFF"}) is None
    for bad in ("5", "99", "100001", "-1", "0.1", "fast", ""):
        with pytest.raises(ConfigError, match=r"\$XPNET_SCHED_SLICE .*100 to 100000.*or off"):
            scheduling.requested_slice_us({"XPNET_SCHED_SLICE": bad})


@needs_custom_slices
def test_every_thread_gets_the_slice_and_keeps_its_nice_value():
    result = probe("nice")
    assert result["before"]["slice"] > 100_000  # the kernel's base slice
    assert len(result["after"]) >= 2  # the main thread and the pools' workers
    assert all(thread == {"slice": 100_000, "policy": os.SCHED_OTHER, "nice": 3} for thread in result["after"])
    assert result["started later"] == {"slice": 100_000, "policy": os.SCHED_OTHER, "nice": 3}  # inherited
    assert result["status"].startswith("0.1 ms for ")


@needs_custom_slices
def test_a_chosen_slice_is_granted_and_off_gives_back_the_kernels():
    assert {thread["slice"] for thread in probe("plain", XPNET_SCHED_SLICE="400")["after"]} == {400_000}
    reset = probe("inherited", XPNET_SCHED_SLICE="off")
    assert reset["before"]["slice"] == 250_000
    kernels = {thread["slice"] for thread in reset["after"]}
    assert len(kernels) == 1 and kernels.pop() > 250_000  # the kernel's base slice again, on every thread
    assert reset["status"] == "the kernel's (XPNET_SCHED_SLICE=off)"


@needs_custom_slices
def test_a_thread_on_the_idle_policy_is_left_alone():
    result = probe("idle policy")
    assert result["before"]["policy"] == os.SCHED_IDLE
    assert {thread["policy"] for thread in result["after"]} == {os.SCHED_IDLE}  # inherited, none made SCHED_OTHER
    assert result["status"] == "the kernel's (no thread on a fair policy: SCHED_OTHER or SCHED_BATCH)"


def test_a_kernel_or_machine_without_custom_slices_is_named(monkeypatch):
    monkeypatch.setattr(scheduling, "_set_thread_slice", lambda *args: 0)  # what a kernel before 6.12 reports
    if scheduling._syscalls() is not None:
        assert "keeps no custom slices; they came in 6.12" in scheduling.shorten_slices({})
    monkeypatch.setattr(scheduling.platform, "machine", lambda: "sparc64")
    assert scheduling.shorten_slices({}) == f"the kernel's (no custom slices on {sys.platform} sparc64)"
    assert scheduling.slice_status() == f"the kernel's (no custom slices on {sys.platform} sparc64)"


def test_info_names_the_slice_and_a_bad_setting_is_one_clear_error():
    shown = xpnet("info", env={"XPNET_SCHED_SLICE": "off"})
    assert shown.returncode == 0 and "scheduler slice: the kernel's (XPNET_SCHED_SLICE=off)" in shown.stdout
    assert_clean_error(xpnet("info", env={"XPNET_SCHED_SLICE": "5"}), "$XPNET_SCHED_SLICE '5'", "microseconds")
