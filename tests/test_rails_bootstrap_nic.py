"""NCCL's own sockets (bootstrap, IB handshakes) on the management interface that carries the rendezvous
(``bench.rails.measurement.bootstrap_nic``): the default on IB profiles, a site's own value kept and said in one
line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.rails.measurement.bootstrap_nic import interface_towards, management_socket_ifname, site_value_line
from tests.support import REPO

# One rank's before-init step of ``rails`` as the command runs it, on a real store (world of one on this host).
_STEP = """
import json, os, sys
from datetime import timedelta
from pathlib import Path
import torch.distributed as dist
from bench.rails.plan.config import RailsConfig, validate
from bench.rails.rank import rail_prelude
from bench.runtime.before_init import Prelude
from bench.runtime.env import RankInfo
store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=10), wait_for_workers=False)
info = RankInfo(0, 0, 1, 1, 0, 1, "127.0.0.1", store.port, "openmpi")
profile, settings = validate(RailsConfig(profile=sys.argv[1]), with_history=False)
rail_prelude(settings, profile, lambda: Path(sys.argv[2]))(Prelude(info, store, True, 10.0))
print(json.dumps({"NCCL_SOCKET_IFNAME": os.environ.get("NCCL_SOCKET_IFNAME")}))
"""


def _step(tmp_path: Path, profile: str, site: str | None) -> tuple[str | None, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCCL_")}
    if site is not None:
        env["NCCL_SOCKET_IFNAME"] = site
    done = subprocess.run(
        [sys.executable, "-c", _STEP, profile, str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    *said, last = done.stdout.splitlines()
    return json.loads(last)["NCCL_SOCKET_IFNAME"], said


def test_the_interface_towards_the_rendezvous_is_the_one_the_kernel_routes_it_by() -> None:
    assert interface_towards("127.0.0.1", 29500) == "lo"
    assert management_socket_ifname("127.0.0.1", 29500) == "=lo"
    assert management_socket_ifname(None, None) is None
    assert interface_towards("no-such-host.invalid", 1) is None


@pytest.mark.slow  # four Python processes: 6 s of the unit tier's 29 at load 1
def test_ib_profiles_keep_nccls_sockets_on_the_management_interface(tmp_path: Path) -> None:
    # Unset, NCCL would take ib* (IPoIB on a rail) first (src/misc/socket.cc ncclFindInterfaces).
    value, said = _step(tmp_path / "a", "lambda-1cc", None)
    assert value == "=lo" and said == []
    # A site's own value wins, and rank 0 says in one line that it is not the management interface.
    value, said = _step(tmp_path / "b", "lambda-1cc", "ib")
    assert value == "ib"
    (line,) = [s for s in said if "NCCL_SOCKET_IFNAME" in s]
    assert line.startswith("# NCCL_SOCKET_IFNAME=ib from the environment kept") and "management interface lo" in line
    # The same value as the management one is not worth a line.
    assert _step(tmp_path / "c", "lambda-1cc", "=lo") == ("=lo", [])
    # Socket profiles: NCCL_SOCKET_IFNAME is the rails' data path, the profile's rail interfaces (local: lo).
    assert _step(tmp_path / "d", "local", None) == ("lo", [])


def test_the_site_line_names_what_the_site_value_selects() -> None:
    line = site_value_line("ib", "=eno1", ["lo", "eno1", "ib0", "ib1"])
    assert line is not None and "(selects ib0, ib1)" in line and "management interface eno1" in line
    assert site_value_line("=eno1", "=eno1", ["lo", "eno1", "ib0"]) is None
    assert site_value_line("eno", "=eno1", ["lo", "eno1"]) is None
