"""The docs' plan examples are the code's output: every ``--plan`` command the README and the docs pages show in a
``bash`` block, followed by an output block, prints that block today (the whole output or a run of its lines), so
an example cannot go stale as the plan's model or its phases change (issue 43: the 64-node example had the world
sweep before the rails and 7 intra-node rounds where the plan prints 21). The commands run without the history
(the docs show the model's plan, which is every plan on a cluster nothing has run on)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.support import REPO, railbench_inline

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A bash block of one railbench --plan command, then (a blank line between) the block of what it prints.
EXAMPLE = re.compile(r"```bash\n(railbench [^\n]*--plan[^\n]*)\n```\n\n```\n(.*?)```", re.S)


def _examples() -> list[tuple[str, str, list[str]]]:
    """(page, command, the lines the page shows it printing)."""
    return [
        (page.name, found.group(1), found.group(2).splitlines())
        for page in PAGES
        for found in EXAMPLE.finditer(page.read_text())
    ]


def _within(shown: list[str], printed: list[str]) -> bool:
    """Whether ``shown`` is a run of consecutive lines of ``printed``."""
    return any(printed[i : i + len(shown)] == shown for i in range(len(printed) - len(shown) + 1))


def test_every_plan_example_in_the_docs_is_held_to_a_command() -> None:
    """A plan's output shown in the docs comes with the command that prints it, so the test below runs it."""
    held = {line for _, _, shown in _examples() for line in shown}
    for page in PAGES:
        for line in page.read_text().splitlines():
            if line.startswith(("# plan:", "# cut to fit:", "# projected wall time:")):
                assert line in held, f"{page.name}: a plan line with no --plan command before it: {line[:80]}"
    assert len(_examples()) >= 2  # docs/rails.md: the 64-node plan and a --max-minutes cut


def test_every_plan_example_in_the_docs_is_what_the_command_prints_today(tmp_path: Path) -> None:
    for page, command, shown in _examples():
        done = railbench_inline([*shlex.split(command)[1:], "--no-history"], cwd=tmp_path)
        assert done.returncode == 0, (page, command, done.stderr)
        printed = done.stdout.splitlines()
        assert _within(shown, printed), f"{page}: `{command}` now prints:\n" + "\n".join(printed)
