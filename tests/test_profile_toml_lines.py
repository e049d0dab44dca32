"""bench.profile.toml_lines: the one locator of a profile's refusals, and the tables read through the codec
with it (issue 44 item 5). Each refusal is one line: the file, the line of the key, what is wrong and how to fix
it; exit 2 through the CLI (tests/test_profile_cluster_profiles.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.exits import UserError
from bench.profile.cluster import load_profile
from bench.profile.toml_lines import label, line_of

TEXT = """name = "p"
pass_fraction = 0.9

[errors]
window_s = 3
max_count = { link_downed = 2 }

[errors.max_count]
symbol_error = 10

[gpu.B200]
match = ["NVIDIA B200"]
"""


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        (("pass_fraction",), 2),
        (("errors",), 4),
        (("errors", "window_s"), 5),
        (("errors", "max_count"), 6),  # the key set inline comes before its header
        (("errors", "max_count", "link_downed"), 6),  # inside an inline table: the table's key
        (("errors", "max_count", "symbol_error"), 9),
        (("gpu", "B200"), 11),
        (("gpu", "B200", "match", 0), 12),  # a list's item: the list's key
        (("gpu", "B200", "source"), 11),  # a key not set: its table's header
        (("nowhere",), 1),
    ],
)
def test_the_line_of_a_key_is_where_it_is_set_or_its_nearest_table(keys: tuple[str | int, ...], line: int) -> None:
    assert line_of(TEXT, keys) == line


def test_a_value_is_named_by_its_table_and_key() -> None:
    assert label(("errors", "max_count", "link_downed")) == "[errors.max_count] link_downed"
    assert label(("gpudirect", "fail_xids", 2)) == "[gpudirect] fail_xids[2]"
    assert label(("pass_fraction",)) == "pass_fraction"


@pytest.mark.parametrize(
    ("table", "line", "said"),
    [
        ("[errors]\nwindow_s = 'x'", 4, '[errors] window_s = "x" must be a number'),
        ("[errors]\nwindow_s = -1", 4, "[errors] window_s is -1.0, a negative value where none can be"),
        ("[errors]\nkernel_log_window_s = 1e300", 4, "above the largest plausible value 7.776e+06"),
        ("[errors]\nfail_on_rise = [1]", 4, "[errors] fail_on_rise[0] = 1 must be a string"),
        (
            "[errors]\nfail_on_rise = 'link_downed'",
            4,
            '[errors] fail_on_rise = "link_downed" must be a list of strings',
        ),
        ("[errors]\n\nfail_on_rise = ['symbol_errors']", 5, "symbol_errors is not an error counter railbench reads"),
        ("[errors]\nmax_count_severity = 'page'", 4, "max_count_severity = \"page\" must be one of 'warn', 'fail'"),
        ("[errors]\nfail_on_errors = 1", 4, "[errors] fail_on_errors = 1 must be true or false"),
        ("[errors]\nmax_count = 3", 4, "[errors] max_count = 3 must be a table"),
        ("[errors.max_count]\nlink_downed = -2", 4, "[errors.max_count] link_downed = -2 must be a whole number >= 0"),
        ("[errors.max_count]\nlink_downe = 2", 4, "[errors.max_count] link_downe = 2: link_downe is not an error"),
        ("[errors]\nbogus = 1", 4, "unknown [errors] key 'bogus'; known keys: fail_on_errors, fail_on_rise, "),
        ("[gpudirect]\nmtu = 1500", 4, "[gpudirect] mtu = 1500 must be one of 256, 512, 1024, 2048, 4096"),
        ("[gpudirect]\nmax_read_request = '4096'", 4, '[gpudirect] max_read_request = "4096" must be one of 128,'),
        (
            "[gpudirect]\nfail_xids = [48, 0]",
            4,
            "[gpudirect] fail_xids[1] = 0 is not an Xid number: write e.g. [48, 79]",
        ),
        ("[gpudirect]\nfail_xids = [48, '79']", 4, '[gpudirect] fail_xids[1] = "79" must be a whole number'),
        ("[rails_test]\niters = 2.5", 4, "[rails_test] iters = 2.5 must be a whole number"),
        ("[rails_test]\ncollectives = [1]", 4, "[rails_test] collectives[0] = 1 must be a string"),
        (
            "[rails_test]\npair_bytes = '1Q'",
            4,
            "[rails_test] pair_bytes '1Q' is not a size: use bytes or a K/M/G suffix",
        ),
        (
            "[rails_test]\nrail_bytes = true",
            4,
            '[rails_test] rail_bytes = true must be a number of bytes or a size such as "64M"',
        ),
        (
            "[rails_test]\nrelative_fraction = 1.5",
            4,
            "[rails_test] relative_fraction is 1.5, above the largest plausible value 1",
        ),
        (
            "[rails_test]\n\ngiven = ['iters']",
            5,
            "unknown [rails_test] key 'given'; known keys: collectives, confirm, iters, pair",
        ),
        ("[rails]\ncount = 'eight'", 4, '[rails] count = "eight" must be a whole number'),
        ("[rails]\n\ncount = 65", 5, "[rails] count = 65 must be between 1 and 64"),
        ("[rails]\nrate_gbps = nan", 4, "[rails] rate_gbps is nan, not a finite number"),
        ("[rails]\nlink_layer = 'IB'", 4, "[rails] link_layer = \"IB\" must be one of 'InfiniBand', 'Ethernet'"),
        ("[rails]\nnames = ['eth1', 2]", 4, "[rails] names[1] = 2 must be a string"),
        ("[rails]\nspeed = 400", 4, "unknown [rails] key 'speed'; known keys: count, exclude, exclude_ifnames, link_"),
        ("[network]\noob_ifname = ['eth0']", 4, '[network] oob_ifname = ["eth0"] must be a string'),
        ("[network]\noob = 'eth0'", 4, "unknown [network] key 'oob'; known keys: oob_ifname, socket_ifnames"),
        (
            "[nvlink_targets_gbps]\nallreduce = 1",
            4,
            "[nvlink_targets_gbps] allreduce = 1: 'allreduce' is not a collective",
        ),
        (
            "[node_targets_gbps]\nall_reduce = { '1G' = -1 }",
            4,
            "[node_targets_gbps.all_reduce] 1G = -1 must be a positive",
        ),
        (
            "[node_targets_gbps]\nall_reduce = { '1Q' = 1 }",
            4,
            "[node_targets_gbps.all_reduce] 1Q '1Q' is not a size: use",
        ),
        ("[gpu.X]\nmatch = 'A'\nsource = 's'", 4, '[gpu.X] match = "A" must be a list of strings'),
        (
            "[gpu.X]\nmatch = ['A']\nsource = 's'\nnvlink_target_gbps = 0",
            6,
            "[gpu.X] nvlink_target_gbps is 0.0; it must",
        ),
        ("[gpu.X]\nmatch = ['A']\nsource = 's'\nname = 'Y'", 6, "unknown [gpu.X] key 'name'; known keys: match, node_"),
        (
            "[gpu.X]\nmatch = ['A']\nsource = 's'\n[gpu.X.node_targets_gbps]\nsendrecv = 'x'",
            7,
            '[gpu.X.node_targets_gbps] sendrecv = "x" must be a positive',
        ),
        ('transport = "infiniband"', 3, "transport = \"infiniband\" must be one of 'ib', 'roce', 'socket', 'loopback'"),
        ("gpus_per_node = 0", 3, "gpus_per_node = 0 must be between 1 and 1024"),
        ("pass_fraction = 9", 3, "pass_fraction = 9 must be a fraction of the target in (0, 1.5]"),
        ('judge_min_bytes = "1Q"', 3, "judge_min_bytes '1Q' is not a size"),  # was said without its line
        ("[recommended_env]\nNCCL_IB_HCA = 1", 4, "[recommended_env] NCCL_IB_HCA = 1 must be a string; quote it"),
        ("[plan]\nlaunch_s = [90, 2]", 4, "[plan] launch_s = [90, 2]: the low figure comes first"),
        ("[plan]\nlaunch_s = -1", 4, "[plan] launch_s is -1.0, a negative value where none can be"),
        ("[actions]\nlink = 3", 4, "[actions] link = 3 must be a sentence in quotes"),
        ("[actions]\nchecks = 3", 4, '[actions] checks = 3 must be a table of check = "sentence"'),
        ('[actions.checks]\nrail = "x {bad}"', 4, "[actions.checks] rail uses {bad}; placeholders: {device}"),
        ('[actions.checks]\n\nrails = "x"', 5, "unknown [actions.checks] key 'rails'; known keys: cabling,"),
        ('[report]\nunit = "GB/s"', 3, "unknown key 'report'; known keys: actions, compare, counter_tolerance_bytes"),
        ("[compare]\nnoise_k = -1", 4, "[compare] noise_k = -1 must be a number from 0 to 100.0, e.g. 3"),
        ("[compare]\nmin_runs = 0", 4, "[compare] min_runs = 0 must be a whole number from 1 to 1000000"),
        ("[compare]\nrule = 3", 4, "[compare] rule = 3 must be an array of tables: write [[...]] blocks"),
        (
            '[[compare.rule]]\npattern = "a"\nthreshold = 0.1\n[[compare.rule]]\npattern = "b"\nthreshold = 2',
            8,  # the second block's own key
            "[[compare.rule]] number 2: threshold = 2 is not a fraction between 0 and 1",
        ),
        ('[[compare.rule]]\npattern = "a"\nthreshold = 0.1\nx = 1', 6, "unknown [[compare.rule]] number 1 key 'x'"),
        ("[gpudirect]\nspeed = 1", 4, "unknown [gpudirect] key 'speed'; known keys: fail_xids, max_read_request, mtu"),
    ],
)
def test_a_bad_value_of_a_table_is_one_line_with_its_file_and_line(
    tmp_path: Path, table: str, line: int, said: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "p"\n\n{table}\n')
    with pytest.raises(UserError) as refused:
        load_profile(str(path))
    message = str(refused.value)
    assert message.startswith(f"{path}:{line}: ") and said in message and "\n" not in message, message


def test_the_tables_read_through_the_codec_keep_their_values(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\n[errors]\nwindow_s = 2\nfail_on_rise = ["symbol_error"]\nmax_count_severity = "fail"\n'
        "[errors.max_count]\nlink_downed = 3\n[gpudirect]\nmtu = 2048\nfail_xids = [48, 79]\n"
    )
    profile = load_profile(str(path))
    assert (profile.errors.window_s, profile.errors.fail_on_rise, dict(profile.errors.max_count)) == (
        2.0,
        ("symbol_error",),
        {"link_downed": 3},
    )
    assert isinstance(profile.errors.window_s, float) and profile.errors.max_count_severity == "fail"
    assert (profile.gpudirect.mtu, profile.gpudirect.max_read_request, profile.gpudirect.fail_xids) == (
        2048,
        4096,
        (48, 79),
    )
    assert profile.compare.error_counters == ("symbol_error",)
    path.write_text('name = "p"\n[rails_test]\nrail_bytes = "64M"\niters = 3\nrelative_fraction = 1\n')
    rails_test = load_profile(str(path)).rails_test
    assert (rails_test.rail_bytes, rails_test.iters, rails_test.relative_fraction) == (64 << 20, 3, 1.0)
    assert rails_test.given == (
        "rail_bytes",
        "iters",
        "relative_fraction",
    )  # what the profile set, in its order  # [compare] judges the counters [errors] names
