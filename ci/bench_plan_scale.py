"""What ``accept --plan`` projects for a healthy Lambda 1CC of 64, 256 and 1024 nodes, against issue 45's targets.

For each size the script writes the cabling of a rail-optimised fat tree in units of 32 nodes (the fabric model's,
``tests/support/models/fabric_model.Shape.cabling``: 8 rails, a leaf per unit and rail, its uplinks over the spines)
as a ``--topology`` file, runs

    railbench accept --plan --nodes N --backend nccl --profile lambda-1cc --topology FILE --no-history

and prints the projected range, the target for the high end (5, 15 and 30 minutes at 64, 256 and 1024 nodes), the
ratio of the high end to the target, and the three phases with the largest high ends. Nothing runs but the plan: the
figures are the model's (``bench/rails/plan/model.py``, docs/rails.md "Start-up and coordination at 8192 ranks").
Exit 0 when every size's high end is within its target.

    python ci/bench_plan_scale.py                     # 64, 256 and 1024 nodes
    python ci/bench_plan_scale.py --sizes 128 512     # other sizes (no target: the ratio is left out)
    python ci/bench_plan_scale.py --tiny              # 64 nodes only, exit 0 whatever it says (CI: the code path)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fabric.cabling import Cabling, HostPort, SwitchPort  # noqa: E402
from tests.support.models.fabric_model import Shape  # noqa: E402

TARGET_MIN = {64: 5.0, 256: 15.0, 1024: 30.0}
"""Issue 45: a healthy cluster's acceptance at the high end of its plan, minutes."""
UNIT = 32
RAILS = 8
PHASE = re.compile(r"^  (?P<name>\S.*?)\s+(?P<rounds>\d+)\s+(?P<cells>\d+)\s+\S+\s+(?P<low>[\d.]+)\s+(?P<high>[\d.]+)$")


def topology_toml(cabling: Cabling) -> str:
    """``cabling`` in ``--topology``'s TOML: each node's HCAs on their leaf ports, each switch's ports to the next."""
    nodes: dict[str, list[str]] = {}
    switches: dict[str, list[str]] = {}
    for cable in cabling.cables:
        a, b = cable.a, cable.b
        if isinstance(a, HostPort) and isinstance(b, SwitchPort):
            nodes.setdefault(a.host, []).append(f'{a.hca} = "{b.switch}:{b.port}"')
        elif isinstance(a, SwitchPort) and isinstance(b, SwitchPort):
            switches.setdefault(a.switch, []).append(f'{a.port} = "{b.switch}:{b.port}"')
    lines = ["rails = [" + ", ".join(f'"{r}"' for r in cabling.rails) + "]", ""]
    for host, ports in nodes.items():
        lines += [f"[nodes.{host}]", *ports, ""]
    for switch, ports in switches.items():
        lines += [f'[switches."{switch}"]', *ports, ""]
    return "\n".join(lines)


def plan(nodes: int, folder: Path) -> str:
    """``accept --plan``'s printout for ``nodes`` nodes on the model's cabling."""
    path = folder / f"cabling-{nodes}.toml"
    path.write_text(topology_toml(Shape(nodes, RAILS, UNIT).cabling()))
    argv = ["accept", "--plan", "--nodes", str(nodes), "--backend", "nccl", "--profile", "lambda-1cc"]
    argv += ["--topology", str(path), "--no-history"]
    done = subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"bench_plan_scale: accept --plan at {nodes} nodes failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(TARGET_MIN))
    parser.add_argument("--tiny", action="store_true", help="64 nodes only; exit 0 whatever the figures")
    args = parser.parse_args()
    if args.tiny:
        args.sizes = [64]
    inside = True
    print(f"{'nodes':>6} {'projected (min)':>16} {'target':>7} {'high/target':>12}  largest phases at the high end")
    with tempfile.TemporaryDirectory(prefix="bench-plan-scale-") as tmp:
        for nodes in args.sizes:
            out = plan(nodes, Path(tmp))
            total = next(x for x in out.splitlines() if x.startswith("# projected wall time:"))
            low, high = (float(v) / 60 for v in total.split(":", 1)[1].split()[0].split("-"))
            phases = [m.groupdict() for m in map(PHASE.match, out.splitlines()) if m]
            top = sorted(phases, key=lambda p: -float(p["high"]))[:3]
            said = ", ".join(f"{p['name']} {float(p['high']) / 60:.1f}" for p in top)
            target = TARGET_MIN.get(nodes)
            ratio = f"{high / target:.2f}" if target else "-"
            inside &= target is None or high <= target
            shown = f"{target:.0f}" if target else "-"
            print(f"{nodes:>6} {f'{low:.1f}-{high:.1f}':>16} {shown:>7} {ratio:>12}  {said}")
            for line in out.splitlines():
                if line.startswith("# groups:"):
                    print(f"{'':>6} {line}")
    return 0 if inside or args.tiny else 1


if __name__ == "__main__":
    sys.exit(main())
