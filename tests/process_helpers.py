"""Where a process stood, for tests that wait on one and give up: each thread's name, state and kernel wait channel."""

from __future__ import annotations

from pathlib import Path


def thread_states(pid: int) -> str:
    """``name:state:wait-channel`` for each thread of ``pid`` (``gone`` when it has exited)."""
    threads = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            threads.append(f"{(task / 'comm').read_text().strip()}:{state}:{(task / 'wchan').read_text()}")
        except OSError:
            continue
    return " ".join(threads) or "gone"
