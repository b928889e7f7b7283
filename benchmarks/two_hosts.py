"""Two "hosts" on one machine for MPI jobs that must cross a network: two network namespaces joined by a veth pair.

Each host is a network namespace with one end of the pair (named ``xpnet0`` inside both, so one ``-iface`` fits
both), its own address in a private range, its own host name (a UTS namespace) and its own scratch folder as
``TMPDIR``; a host file names both (by host name: the launcher script maps the names to namespaces, so
MPICH's own messages name the hosts as xpnet's do). MPICH's Hydra starts every job from host A (``mpiexec`` runs
inside A's namespace) and reaches host B through ``-launcher-exec``: a small script standing in for ``ssh`` that
enters B's namespace instead of logging in. Ranks on different hosts therefore talk over the veth link through
MPICH's TCP transport (UCX's ``tcp``), never through shared memory; the link's byte counters show it. Ranks start
in the shared folder (``-wdir``), the only one a real cluster would share besides the software.

Traffic only flows between the two namespaces made here (they have no other link and no route out); everything
is removed on exit, on error and on Ctrl-C. Needs root and ``ip`` (``unavailable()`` says why not).

    python -m benchmarks.two_hosts [--ranks 4] [--timeout 120] [--shared DIR] -- COMMAND...

runs ``mpiexec -n RANKS -f HOSTS COMMAND...`` across the two hosts (ranks filled host A first, then B, as the host
file says), prints the bytes that crossed the link and exits with the job's status.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PREFIX = "10.213.26"
"""The /24 (RFC 1918, private) the two hosts take their addresses from; routed nowhere."""
IFACE = "xpnet0"
"""The name of the veth end inside each namespace."""
NETMOD = {"MPIR_CVAR_CH4_NETMOD": "ucx", "UCX_TLS": "tcp", "UCX_NET_DEVICES": IFACE}
"""MPICH's UCX netmod over plain TCP on the veth end: the path ranks on separate hosts take (left to itself, the
mpich wheel's libfabric ``tcp`` provider fails to open its endpoint in a namespace and the job hangs at start)."""
LAUNCHER = """#!/bin/sh
# Hydra's stand-in for ssh: "LAUNCHER [OPTIONS] HOST COMMAND..." runs COMMAND on HOST (enters its namespace)
while [ "${1#-}" != "$1" ]; do shift; done
case "$1" in
%(cases)s
  *) echo "two_hosts: no host $1 here" >&2; exit 255;;
esac
shift
exec %(enter)s "$ns" "$name" "$scratch" "$@"
"""
ENTER = """#!/bin/sh
# "ENTER NAMESPACE HOSTNAME SCRATCH COMMAND...": COMMAND as a shell line on that host (as ssh runs it)
ns=$1 name=$2 scratch=$3
shift 3
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && export TMPDIR="$2" && shift 2 && eval "exec $*"' \\
    sh "$name" "$scratch" "$@"
"""


def unavailable() -> str | None:
    """Why two hosts cannot be made on this machine (not root, no ``ip``, ``unshare`` or namespaces), or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    for tool in ("ip", "unshare", "mpiexec"):
        if shutil.which(tool) is None:
            return f"needs '{tool}' on the PATH"
    probe = f"xpnet-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        return f"cannot make a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@dataclass(frozen=True)
class Host:
    """One of the two hosts: its namespace, host name, address and private scratch folder."""

    namespace: str
    name: str
    address: str
    scratch: Path


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _wait_until_up(namespace: str, seconds: float = 10.0) -> None:
    """Wait for the link's end in ``namespace`` to carry traffic (a veth is up once both its ends are): UCX
    leaves out a device that is not up yet, and the job then fails to start."""
    deadline = time.monotonic() + seconds
    while "state UP" not in subprocess.run(["ip", "-n", namespace, "link", "show", IFACE], capture_output=True,
                                           text=True, timeout=30).stdout:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the veth link in namespace {namespace} did not come up within {seconds:g} s")
        time.sleep(0.05)


class TwoHosts:
    """Two hosts joined by a veth link, made on ``__enter__`` and removed on ``__exit__`` (whatever happened).

    ``shared`` is the folder both hosts see (data and checkpoints, as a cluster's shared file system); each host's
    scratch folder (its ``TMPDIR``) lives elsewhere, in a folder made and removed here.
    """

    def __init__(self, shared: Path) -> None:
        self.shared = Path(shared)
        tag = f"{os.getpid() % 100000}"
        self.folder = Path(tempfile.mkdtemp(prefix="xpnet-two-hosts-"))
        self.hosts = [Host(f"xpnet-{tag}-{side}", f"xpnet-host-{side}", f"{PREFIX}.{index + 1}",
                           self.folder / f"scratch-{side}") for index, side in enumerate("ab")]
        self.hostfile = self.folder / "hosts"
        self.launcher = self.folder / "launcher"
        self._veth = f"xpv{tag}"

    # ------------------------------------------------------------------------------------------ make, remove
    def __enter__(self) -> TwoHosts:
        try:
            self._make()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._remove()

    def _make(self) -> None:
        a, b = self.hosts
        for host in self.hosts:
            _ip("netns", "add", host.namespace)
            host.scratch.mkdir()
        _ip("link", "add", f"{self._veth}a", "netns", a.namespace, "type", "veth",
            "peer", "name", f"{self._veth}b", "netns", b.namespace)
        for host, end in zip(self.hosts, "ab", strict=True):
            _ip("link", "set", f"{self._veth}{end}", "name", IFACE, namespace=host.namespace)
            _ip("addr", "add", f"{host.address}/24", "dev", IFACE, namespace=host.namespace)
            _ip("link", "set", IFACE, "up", namespace=host.namespace)
            _ip("link", "set", "lo", "up", namespace=host.namespace)
        for host in self.hosts:
            _wait_until_up(host.namespace)
        enter = self.folder / "enter"
        enter.write_text(ENTER)
        cases = "\n".join(f"  {h.name}) ns={h.namespace} name={h.name} scratch={h.scratch};;" for h in self.hosts)
        self.launcher.write_text(LAUNCHER % {"cases": cases, "enter": enter})
        for script in (enter, self.launcher):
            script.chmod(0o755)

    def pids(self, host: int) -> list[int]:
        """The processes running on host ``host`` (0: A, 1: B): those inside its network namespace."""
        listed = subprocess.run(["ip", "netns", "pids", self.hosts[host].namespace], capture_output=True, text=True,
                                timeout=30).stdout
        return [int(pid) for pid in listed.split()]

    def _remove(self) -> None:
        for index, host in enumerate(self.hosts):  # first end what a fault left running there, by its pid
            for pid in self.pids(index):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True, timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------ jobs
    def job(self, ranks: int, argv: list[str], env: dict[str, str] | None = None, per_host: int = 2,
            options: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run ``argv`` as ``ranks`` MPI ranks, ``per_host`` a host (host
        A's first), started from host A with mpiexec's ``options`` besides these: ``env`` (default this process's)
        with MPICH's TCP transport on the link, passed to every rank but ``TMPDIR`` (each host's own scratch
        folder)."""
        self.hostfile.write_text("".join(f"{host.name}:{per_host}\n" for host in self.hosts))
        env = {**(os.environ if env is None else env), **NETMOD}
        mpiexec = [shutil.which("mpiexec", path=env.get("PATH")) or "mpiexec", "-f", str(self.hostfile),
                   "-n", str(ranks), "-launcher", "ssh", "-launcher-exec", str(self.launcher), "-iface", IFACE,
                   "-wdir", str(self.shared),
                   "-genvlist", ",".join(sorted(set(env) - {"TMPDIR"})), *options, *argv]
        a = self.hosts[0]
        return [str(self.folder / "enter"), a.namespace, a.name, str(a.scratch), shlex.join(mpiexec)], env

    def link_bytes(self) -> int:
        """Bytes host A has sent over the link so far."""
        done = subprocess.run(["ip", "netns", "exec", self.hosts[0].namespace, "cat",
                               f"/sys/class/net/{IFACE}/statistics/tx_bytes"], capture_output=True, text=True,
                              check=True, timeout=30)
        return int(done.stdout)

    def cut(self, host: int) -> None:
        """Take host ``host``'s (0: A, 1: B) end of the link down, as a failed network would."""
        _ip("link", "set", IFACE, "down", namespace=self.hosts[host].namespace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.two_hosts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=4, help="MPI ranks in all, two a host (default 4)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before the job is killed")
    parser.add_argument("--shared", type=Path, default=Path.cwd(), help="the folder both hosts share")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command every rank runs (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    reason = unavailable()
    if reason or not command:
        parser.error(reason or "no command given")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leave through the teardown below
    with TwoHosts(args.shared) as hosts:
        before = hosts.link_bytes()
        line, env = hosts.job(args.ranks, command)
        # a session of its own: Ctrl-C reaches mpiexec once, from here (a second one makes Hydra abort at once)
        job = subprocess.Popen(line, env=env, start_new_session=True)
        try:
            status = job.wait(timeout=args.timeout)
        except KeyboardInterrupt:
            job.send_signal(signal.SIGINT)
            status = job.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            job.kill()
            status = job.wait()
            print(f"two_hosts: the job ran over {args.timeout:g} s and was killed", file=sys.stderr)
        print(f"two_hosts: {hosts.link_bytes() - before:,} bytes sent from host A to host B", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
