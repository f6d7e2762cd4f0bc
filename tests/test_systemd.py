"""The systemd units and their companions, checked with systemd's own tools, and walletd run
under a reproduction of the unit's sandbox.

- ``systemd-analyze verify`` must be silent and ``systemd-analyze security`` must rate
  walletd.service at an overall exposure of 1.0 or less (both from the Debian package
  ``systemd``). verify runs against a scratch root holding the units, the unit files they
  depend on and a stand-in for ExecStart's binary, so it needs nothing installed on the host.
- ``systemd-sysusers`` and ``systemd-tmpfiles`` apply the snippets to a scratch root.
- The example configuration documents every option and agrees with the units.
- The sandbox test runs the real daemon with what the unit imposes that a test can reproduce
  without systemd: a read-only file system except the state and runtime directories, no
  network (an empty network namespace), no capabilities, no_new_privs, no writable+executable
  memory, and a seccomp filter that refuses non-AF_UNIX sockets and the privileged and
  resource-control system calls. See the test's docstring for what it does not reproduce.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from wallet_client import WalletClient
from walletd.config import RESTART_ONLY, Config, load_config
from walletd.server.listener import FD_NAMES
from walletd.storage.sealing import CREDENTIAL_NAME

from .config_options import config_options, example_lines
from .support import ROOT, wait_for_socket, walletd_argv

UNITS = ROOT / "systemd"
SERVICE = UNITS / "walletd.service"
SOCKET = UNITS / "walletd.socket"
EXAMPLE = UNITS / "walletd.toml.example"
MAX_EXPOSURE = 1.0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install the Debian package 'systemd'")
    return path


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key -> [values]`` of a unit file (keys may repeat; sections are not needed here)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    """A file system root with the units installed, as ``--root`` for systemd's tools."""
    root = tmp_path / "root"
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    shutil.copy(SERVICE, system)
    shutil.copy(SOCKET, system)
    # The targets the units' default dependencies name (sysinit.target, sockets.target, ...).
    for host in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if host.is_dir():
            shutil.copytree(host, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
            break
    # Stand-ins for ExecStart= and ExecReload=: verify only checks they are executables.
    binary = root / "opt" / "walletd" / "bin" / "walletd"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy(shutil.which("kill") or "/bin/kill", root / "bin" / "kill")
    return root


# ---------------------------------------------------------------------------- systemd-analyze


def test_systemd_analyze_verify_is_silent(scratch_root: Path) -> None:
    proc = subprocess.run(
        [
            tool("systemd-analyze"),
            "verify",
            f"--root={scratch_root}",
            "--man=no",
            "walletd.service",
            "walletd.socket",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_security_exposure_is_at_most_one() -> None:
    analyze = tool("systemd-analyze")
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", "systemd/walletd.service"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Overall exposure level for walletd\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, proc.stdout
    # systemd's own gate agrees (its threshold is in tenths).
    gate = subprocess.run(
        [
            analyze,
            "security",
            "--offline=yes",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            "systemd/walletd.service",
        ],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert gate.returncode == 0


# ---------------------------------------------------------------------------- sysusers, tmpfiles


def test_sysusers_and_tmpfiles_snippets_apply(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "run").mkdir()
    sysusers = subprocess.run(
        [tool("systemd-sysusers"), f"--root={root}", "-"],
        input=(UNITS / "walletd.sysusers").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sysusers.returncode == 0, sysusers.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").open()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").open()}
    user = passwd["walletd"]
    assert user[3] == groups["walletd"][2]  # primary group walletd
    assert user[5:] == ["/var/lib/walletd", "/usr/sbin/nologin\n"]
    assert int(user[2]) < 1000  # a system user

    tmpfiles = subprocess.run(
        [tool("systemd-tmpfiles"), f"--root={root}", "--create", "-"],
        input=(UNITS / "walletd.tmpfiles").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    run = (root / "run" / "walletd").stat()
    assert (run.st_mode & 0o7777, run.st_uid, run.st_gid) == (0o750, int(user[2]), int(user[3]))
    etc = (root / "etc" / "walletd").stat()
    assert (etc.st_mode & 0o7777, etc.st_uid, etc.st_gid) == (0o750, 0, int(user[3]))


# ---------------------------------------------------------------------------- the pieces agree


def test_units_agree_with_each_other_and_with_walletd() -> None:
    service, sock = unit_settings(SERVICE), unit_settings(SOCKET)
    example = tomllib.loads(EXAMPLE.read_text())

    assert sock["ListenStream"] == [example["socket"]] == ["/run/walletd/walletd.sock"]
    assert sock["SocketGroup"] == [example["socket_group"]] == ["walletd"]
    assert sock["SocketMode"] == [example["socket_mode"]] == ["0660"]
    assert sock["FileDescriptorName"][0] in FD_NAMES
    assert service["StateDirectory"] == ["walletd"] and example["state_dir"] == "/var/lib/walletd"
    assert service["StateDirectoryMode"] == ["0700"]  # walletd refuses a group-writable one
    # The socket lives in the runtime directory: it must outlive a stop of the service.
    assert service["RuntimeDirectory"] == ["walletd"]
    assert service["RuntimeDirectoryPreserve"] == ["yes"]
    assert service["User"] == service["Group"] == ["walletd"]
    assert service["Type"] == ["notify"] and service["WatchdogSec"]
    assert service["ExecStart"] == ["/opt/walletd/bin/walletd --config /etc/walletd/walletd.toml"]
    assert service["LoadCredentialEncrypted"] == [f"{CREDENTIAL_NAME}:/etc/walletd/master-key.cred"]
    # Peer uids must reach walletd untranslated: no private user namespace.
    assert "PrivateUsers" not in service
    assert service["CapabilityBoundingSet"] == [""]
    assert service["RestrictAddressFamilies"] == ["AF_UNIX"]
    stop_timeout = float(service["TimeoutStopSec"][0].removesuffix("s"))
    assert stop_timeout > Config().shutdown_grace + 5


def test_example_config_documents_every_option() -> None:
    text = EXAMPLE.read_text()
    # Options of a table (`[quotas]`) are named `quotas.key` (tests/config_options.py).
    lines = list(example_lines(text))
    documented = {line.name for line in lines}
    options = set(config_options())
    assert options - documented == set()
    assert documented - options == set()

    # Each option says whether a reload applies it; that must be what walletd does.
    tags = {
        line.name: tag.group(1)
        for line in lines
        if (tag := re.search(r"# \[(live|restart)\]", line.rest))
    }
    assert set(tags) == options
    # A table's keys take the reload class of their table (``approvals.*`` are restart-only).
    assert {name.split(".")[0] for name, tag in tags.items() if tag == "restart"} == RESTART_ONLY

    config = load_config(str(EXAMPLE), {})
    assert config.require_external_master_key is True

    # Every commented-out example value is itself valid (uncomment them all).
    uncommented = re.sub(r"^# ?([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    values = tomllib.loads(uncommented)
    assert set(values) == set(Config.__struct_fields__)
    assert set(values["quotas"]) == {n.split(".", 1)[1] for n in options if n.startswith("quotas.")}
    load_config(None, values)


# ---------------------------------------------------------------------------- the sandbox

# Runs inside `unshare --mount --net`: applies the sandbox to itself, then execs the command.
SANDBOX = r"""
import ctypes, json, os, re, struct, subprocess, sys

sep = sys.argv.index("--")
writable, command = sys.argv[1:sep], sys.argv[sep + 1:]
applied = []

def run(*argv):
    subprocess.run(argv, check=True)

# ProtectSystem=strict + StateDirectory/RuntimeDirectory: all read-only but those two.
for path in writable:
    run("mount", "--bind", path, path)
for line in open("/proc/self/mountinfo").read().splitlines():
    fields = line.split()
    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
    if point in writable or point.split("/")[1] in ("proc", "sys", "dev"):
        continue
    if "ro" not in fields[5].split(","):
        run("mount", "-o", "remount,bind,ro", point)
applied.append("read-only file system")
# ProtectHome (in part: the interpreter may live under /root, which must stay readable).
if os.path.isdir("/home"):
    run("mount", "-t", "tmpfs", "-o", "ro,mode=000", "tmpfs", "/home")
    applied.append("empty /home")

libc = ctypes.CDLL(None, use_errno=True)
def prctl(*args):
    if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
        raise OSError(ctypes.get_errno(), f"prctl{args}")

# CapabilityBoundingSet= (root's capabilities after exec are limited to the bounding set).
for cap in range(64):
    try:
        prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    except OSError:
        break  # past the last capability this kernel knows
applied.append("no capabilities")
prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
applied.append("no_new_privs")
try:
    prctl(65, 1, 0, 0, 0)  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN: kernel >= 6.3
    applied.append("memory deny write execute")
except OSError:
    pass

# SystemCallFilter= and RestrictAddressFamilies=AF_UNIX, x86-64 numbers.
DENIED = [105, 106, 113, 114, 116, 117, 119, 122, 123, 126,  # set*id, setgroups, capset
          92, 93, 94, 260,  # chown family (@chown in @privileged)
          160, 141, 142, 144, 203, 314, 237, 238, 251,  # @resources (setrlimit: the old one)
          155, 161, 163, 164, 165, 166, 167, 169, 170, 175, 227, 272, 308]  # mount, ns, clock
LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
EPERM, EAFNOSUPPORT, AUDIT_ARCH_X86_64 = 1, 97, 0xC000003E
prog = [(LD, 0, 0, 4), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, ERRNO | EPERM),
        (LD, 0, 0, 0), (JGE, 0, 1, 0x40000000), (RET, 0, 0, ERRNO | EPERM)]  # no x32
for nr in DENIED:
    prog += [(JEQ, 0, 1, nr), (RET, 0, 0, ERRNO | EPERM)]
prog += [(JEQ, 0, 4, 41), (LD, 0, 0, 16), (JEQ, 0, 1, 1), (RET, 0, 0, ALLOW),  # socket(AF_UNIX)
         (RET, 0, 0, ERRNO | EAFNOSUPPORT), (RET, 0, 0, ALLOW)]
raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
buf = ctypes.create_string_buffer(raw, len(raw))
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    raise OSError(ctypes.get_errno(), "seccomp")
applied.append("seccomp: AF_UNIX only, no privileged or resource calls")

print(json.dumps({"event": "sandbox", "applied": applied}), file=sys.stderr, flush=True)
os.execv(command[0], command)
"""

# What a process inside the sandbox can and cannot do: proof that the sandbox is real.
PROBE = r"""
import ctypes, errno, json, mmap, os, resource, socket, sys
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
def write(path):
    with open(path, "w") as f:
        f.write("x")
attempt("write_cwd", lambda: write("sandbox-probe"))
attempt("write_state", lambda: write(os.path.join(sys.argv[1], "probe")))
attempt("inet_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("unix_socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("rwx_memory", lambda: mmap.mmap(-1, 4096, prot=7).close())
attempt("setuid", lambda: os.setuid(0))
attempt("prlimit_core", lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
libc = ctypes.CDLL(None, use_errno=True)
def old_setrlimit():
    limit = (ctypes.c_ulong * 2)(0, 0)
    if libc.syscall(160, 4, limit) != 0:
        raise OSError(ctypes.get_errno(), "setrlimit")
attempt("setrlimit_syscall", old_setrlimit)
# (if_nameindex() would need a netlink socket, refused like any non-AF_UNIX one.)
out["interfaces"] = [line.split(":")[0].strip() for line in open("/proc/self/net/dev")][2:]
out["home"] = os.access("/home", os.R_OK | os.X_OK)
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
out["CapEff"], out["NoNewPrivs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
out["Seccomp"] = status["Seccomp"].strip()
print(json.dumps(out))
"""


def sandboxed(writable: list[Path], command: list[str]) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--net",
        "--propagation",
        "private",
        sys.executable,
        "-c",
        SANDBOX,
        *map(str, writable),
        "--",
        *command,
    ]


@pytest.fixture
def sandbox_dirs(open_tmp: Path) -> dict[str, Path]:
    if platform.machine() != "x86_64":
        pytest.skip("the seccomp filter of this reproduction uses x86-64 system call numbers")
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot create mount and network namespaces here: {probe.stderr!r}")
    dirs = {name: open_tmp / name for name in ("state", "run", "home")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    return dirs


@pytest.mark.root
def test_the_sandbox_reproduction_is_real(sandbox_dirs: dict[str, Path]) -> None:
    proc = subprocess.run(
        sandboxed(
            [sandbox_dirs["state"], sandbox_dirs["run"]],
            [sys.executable, "-c", PROBE, str(sandbox_dirs["state"])],
        ),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    expected_memory = "EACCES" if "memory deny write execute" in proc.stderr else "ok"
    assert seen == {
        "write_cwd": "EROFS",
        "write_state": "ok",
        "inet_socket": "EAFNOSUPPORT",
        "unix_socket": "ok",
        "rwx_memory": expected_memory,
        "setuid": "EPERM",
        "prlimit_core": "ok",
        "setrlimit_syscall": "EPERM",
        "interfaces": ["lo"],
        "home": False,
        "CapEff": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
    }
    if tuple(int(part) for part in platform.release().split(".")[:2]) >= (6, 3):
        assert expected_memory == "EACCES"  # this kernel has PR_SET_MDWE: it must be on


@pytest.mark.root
@pytest.mark.slow
def test_walletd_serves_inside_the_sandbox(sandbox_dirs: dict[str, Path]) -> None:
    """The daemon starts, serves, stops and restarts with its state inside the sandbox.

    Not reproduced here (needs systemd itself): socket activation by the manager (covered by
    test_activation), User=walletd, PrivateTmp/PrivateDevices/ProtectProc/ProtectKernel*,
    IPAddressDeny, credentials, and /root stays readable (the test interpreter lives there).
    """
    state, run = sandbox_dirs["state"], sandbox_dirs["run"]
    sock = run / "walletd.sock"
    log_path = state.parent / "sandboxed.log"
    command = sandboxed(
        [state, run],
        walletd_argv(sock, state),
    )
    env = {**os.environ, "HOME": str(sandbox_dirs["home"])}

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, stderr=log, cwd=ROOT, env=env)
        wait_for_socket(sock, proc=proc)
        return proc

    def stop(proc: subprocess.Popen[bytes]) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(20)

    proc = start()
    try:
        status = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        )
        assert (status["NoNewPrivs"].strip(), status["Seccomp"].strip()) == ("1", "2")
        assert status["CapEff"].strip() == "0" * 16
        with WalletClient(sock, timeout=20) as client:
            client.create_wallet("alice")
            signature = client.sign_message("alice", b"sandboxed")
            rotated = client.rotate_keys("alice")
            assert client.get_wallet_address("alice") == rotated
        assert stop(proc) == 0
        assert not sock.exists()

        proc = start()  # the state written inside the sandbox opens again
        with WalletClient(sock, timeout=20) as client:
            assert client.get_wallet_address("alice") == rotated
            assert not client.verify_signature("alice", b"sandboxed", signature)  # rotated key
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)

    lines: list[dict[str, Any]] = []
    for line in log_path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"unexpected output from the sandboxed daemon: {line}")
    assert [e["event"] for e in lines if e["event"] in ("sandbox", "ready", "stopped")] == [
        "sandbox",
        "ready",
        "stopped",
        "sandbox",
        "ready",
        "stopped",
    ]
    assert not [e for e in lines if e.get("level") in ("error", "critical")]
