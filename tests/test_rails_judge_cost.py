"""The judge's cheaper ways to the same numbers (issue 45 item 4: one judgement at 1024 x 8 in <= 10 s, <= 1 GB).

Each shortcut must give the arrays the plain way gave, to the bit: the resources of the fair shares numbered
through a table (``capacity._ranks``) as ``np.unique`` numbers them; rails cabled alike filled once
(``capacity._alike_rails``) as a filling of every rail gives them; and the re-measurements' fractions held at their
cells (``expected.Cellwise``) read as their dense array reads. ``ci/bench_judge.py`` prints the cost; the
printout of ``ci/diagnosis_sim.py`` before and after is the same (its paragraph "The cost of the judge" in
docs/rails.md, "The fabric's cabling, the switches, and the acceptance plan").
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from bench.rails.diagnosis import lone_pairs, noise, sparse
from bench.rails.diagnosis.expected import Cellwise
from bench.rails.diagnosis.last_answer import LastAnswer, fingerprint
from bench.rails.diagnosis.remeasured import Remeasured
from bench.rails.plan import capacity
from bench.rails.plan.fabric_map import Topology, place
from bench.rails.plan.schedule import schedule
from tests.support.models.fabric_model import Shape


def test_ranks_number_values_as_unique_does() -> None:
    rng = np.random.default_rng(5)
    for span in (1, 7, 100, 10**9):  # a table where the span is small, a sort where it is not
        values = rng.integers(0, span, size=int(rng.integers(1, 300)))
        inverse, count = capacity._ranks(values)
        unique, expected = np.unique(values, return_inverse=True)
        assert count == len(unique) and np.array_equal(inverse, expected)


def _plane() -> capacity.Plane:
    model = Shape(64, 8, 32, 2)
    cabling = model.cabling()
    nodes = [model.node_name(a) for a in range(64)]
    return place(Topology(cabling, cabling.rails), nodes, 8, lambda node, rail: None).plane()


def test_rails_cabled_alike_fill_once_to_the_same_bits() -> None:
    plane = _plane()
    leaf = plane.leaf.copy()
    # Rail 3 with its two leaves' labels swapped (still alike); rail 5's leaves with fewer uplinks (not alike).
    first, second = sorted(set(leaf[3].tolist()))
    leaf[3] = np.where(leaf[3] == first, second, np.where(leaf[3] == second, first, leaf[3]))
    capacity_ = plane.capacity.copy()
    capacity_[np.unique(leaf[5])] = 6.0
    plane = dataclasses.replace(plane, leaf=leaf, capacity=capacity_)
    assert capacity._alike_rails(plane).tolist() == [0, 0, 0, 0, 0, 5, 0, 0]
    rounds = schedule(64, 1, 0)
    load = capacity.matrix_load(plane, rounds, 1)
    # The plain way: every rail's cells in one filling.
    pairs = np.concatenate([np.array(r.pairs).reshape(-1, 2) for r in rounds])
    index = np.concatenate([np.full(len(r.pairs), r.index) for r in rounds])
    k = np.repeat(np.arange(8), len(pairs))
    a, b, group = np.tile(pairs[:, 0], 8), np.tile(pairs[:, 1], 8), np.tile(index, 8)
    for routing in capacity.ROUTINGS:
        share = plane.shares(k, a, b, group, routing == "destination")
        assert np.array_equal(load.fraction[routing][0, k, a, b], share)
        assert np.array_equal(load.fraction[routing][0, k, b, a], share)
    assert (load.fraction["spread"][0, 5] < load.fraction["spread"][0, 0]).any()  # the narrower rail is its own


def test_cellwise_fractions_read_as_their_dense_array() -> None:
    rng = np.random.default_rng(9)
    n, rails, passes = 6, 3, 2
    k, a, b = np.nonzero(np.triu(rng.random((rails, n, n)) < 0.3, k=1))
    cells = Cellwise((passes, rails, n, n), k, a, b, rng.choice([0.25, 0.5, 1 / 3, 1.0], len(k)))
    dense = cells.dense()
    qk, qa, qb = (rng.integers(0, m, 40) for m in (rails, n, n))
    assert np.array_equal(cells.at(qk, qa, qb), dense[:, qk, qa, qb])
    assert np.array_equal(cells.passes(1).dense(), dense[:1])
    none = np.zeros(0, dtype=np.int64)
    assert np.array_equal(Cellwise((passes, rails, n, n), none, none, none, np.ones(0)).dense(), np.ones(dense.shape))


def test_one_entry_cache_answers_only_the_same_question() -> None:
    asked: list[str] = []
    last = LastAnswer[str]()

    def compute(answer: str) -> str:
        asked.append(answer)
        return answer

    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert last.answer(fingerprint(x), lambda: compute("first")) == "first"
    assert last.answer(fingerprint(x.copy()), lambda: compute("again")) == "first"  # the same content
    y = x.copy()
    y[2, 3] = np.nextafter(y[2, 3], np.inf)  # one bit of one value
    assert last.answer(fingerprint(y), lambda: compute("changed")) == "changed"
    assert last.answer(fingerprint(x), lambda: compute("back")) == "back"  # one entry: the older one is gone
    assert asked == ["first", "changed", "back"]
    # One buffer read as another shape or dtype, or a transposed view (its own bytes in C order), is another key.
    others = (x.reshape(4, 3), x.view(np.int64), x.T, x[:, :2])
    assert len({fingerprint(a) for a in (x, *others)}) == 5


def test_holm_at_the_measured_pairs_alone_reads_as_through_the_whole_matrix() -> None:
    rng = np.random.default_rng(3)
    found = 0
    for n in (2, 5, 9):
        # Few distinct values, so Holm meets ties (broken by the matrix's order); NaN unmeasured, -inf nothing moved.
        xs = rng.choice([-3.0, -1.5, -0.2, 0.0, 0.1, -np.inf, np.nan], size=(2, 3, n, n))
        for reference, sigma, alpha in ((0.0, 0.5, noise.FALSE_ALARMS), (-0.1, 0.02, noise.LONE_FALSE_ALARMS)):
            upper = np.triu(np.ones((n, n), dtype=bool), k=1)
            dense = noise.holm_significant(np.where(upper, (reference - xs) / sigma, np.nan), alpha)
            dense |= np.swapaxes(dense, -1, -2)
            assert np.array_equal(noise.holm_below(reference, xs, sigma, alpha), dense)
            found += int(dense.sum())
    assert found > 0  # some pairs were found below, so the mirroring was tried


def test_holm_with_a_level_and_spread_per_class_reads_as_through_dense_arrays() -> None:
    """``noise.ByClass`` reads each cell's level and spread at the cells tested alone; one Holm over all of them, as
    with matrix-sized arrays of both."""
    rng = np.random.default_rng(5)
    found_inside = found_between = 0
    for n in (3, 6, 10):
        xs = rng.choice([-2.0, -0.6, -0.2, -0.05, 0.0, -np.inf, np.nan], size=(2, 2, n, n))
        inside = rng.random((2, n, n)) < 0.5
        inside |= np.swapaxes(inside, -1, -2)
        level = noise.ByClass(inside, -0.01, -0.2)
        sigma = noise.ByClass(inside, 0.02, 0.3)
        dense_level = np.where(inside, -0.01, -0.2)
        dense_sigma = np.where(inside, 0.02, 0.3)
        upper = np.triu(np.ones((n, n), dtype=bool), k=1)
        dense = noise.holm_significant(np.where(upper, (dense_level - xs) / dense_sigma, np.nan), noise.FALSE_ALARMS)
        dense |= np.swapaxes(dense, -1, -2)
        assert np.array_equal(noise.holm_below(level, xs, sigma), dense)
        assert np.array_equal(noise.below(xs, level, -0.1), xs < dense_level - 0.1)
        found_inside += int((dense & inside).sum())
        found_between += int((dense & ~inside).sum())
    assert found_inside > 0 and found_between > 0  # both classes' yardsticks were reached


def _symmetric(values: np.ndarray) -> np.ndarray:
    """``values`` (``[..., a, b]``) with each pair's ``[a, b]`` value at ``[b, a]`` too, NaN on the diagonal."""
    n = values.shape[-1]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    out = np.where(upper, values, np.swapaxes(values, -1, -2))
    out[..., np.arange(n), np.arange(n)] = np.nan
    return out


def test_the_remeasurements_held_at_their_cells_read_as_their_dense_planes() -> None:
    """``Remeasured`` holds the suspects' re-measurements at their cells, as ``pair_matrix`` builds them or from dense
    planes; read back, gathered at cells either way round, or spread, they are the planes they stand for."""
    rng = np.random.default_rng(11)
    passes, rails, n = 3, 2, 7
    values = _symmetric(
        np.where(rng.random((passes, rails, n, n)) < 0.3, rng.uniform(50, 400, (passes, rails, n, n)), np.nan)
    )
    stopped = (rng.random(values.shape) < 0.3) & ~np.isnan(values)
    stopped |= np.swapaxes(stopped, -1, -2)
    held = Remeasured.from_dense(values, stopped)
    assert held.shape == values.shape and len(held.rail) < rails * n * (n - 1) // 2
    keys = (held.rail * n + held.low) * n + held.high
    assert (held.low < held.high).all() and (np.diff(keys) > 0).all()  # upper triangles, in the dense order
    np.testing.assert_array_equal(held.dense(), values)
    np.testing.assert_array_equal(held.dense_stopped(), stopped)
    qk, qa, qb = (rng.integers(0, m, 60) for m in (rails, n, n))
    np.testing.assert_array_equal(held.at(qk, qa, qb), values[:, qk, qa, qb])
    np.testing.assert_array_equal(held.stopped_at(qk, qa, qb), stopped[:, qk, qa, qb])
    np.testing.assert_array_equal(held.spread(~np.isnan(held.values)), ~np.isnan(values))
    np.testing.assert_array_equal(held.first(1).dense(), values[:1])
    np.testing.assert_array_equal(held.since(1).dense(), values[1:])
    # From one sample per pass and cell, as pair_matrix gathers them: the same cells and numbers.
    slot, k, a, b = np.nonzero(~np.isnan(values) & np.triu(np.ones((n, n), dtype=bool), k=1))
    order = rng.permutation(len(slot))
    slot, k, a, b = slot[order], k[order], a[order], b[order]
    built = Remeasured.from_samples(values.shape, slot, k, a, b, values[slot, k, a, b], stopped[slot, k, a, b])
    for name in ("rail", "low", "high", "values", "stopped"):
        np.testing.assert_array_equal(getattr(built, name), getattr(held, name), err_msg=name)
    none = Remeasured.none(2, rails, n)
    assert none.shape == (2, rails, n, n) and np.isnan(none.dense()).all()
    assert np.isnan(none.at(qk, qa, qb)).all() and not none.stopped_at(qk, qa, qb).any()


def test_holm_at_the_remeasured_cells_reads_as_through_their_dense_planes() -> None:
    """The re-measurements are judged at their cells (``noise.holm_below_cells``, ``noise.below`` with ``cells``):
    the verdicts the dense planes gave, Holm's ties broken in the same order, one level or one per class."""
    rng = np.random.default_rng(8)
    found = 0
    for n in (3, 6, 10):
        xs = _symmetric(rng.choice([-2.0, -0.6, -0.2, -0.05, 0.0, -np.inf, np.nan, np.nan], size=(2, 2, n, n)))
        inside = rng.random((2, n, n)) < 0.5
        inside |= np.swapaxes(inside, -1, -2)
        held = Remeasured.from_dense(xs)
        for level, sigma in ((-0.01, 0.3), (noise.ByClass(inside, -0.01, -0.2), noise.ByClass(inside, 0.02, 0.3))):
            dense = noise.holm_below(level, xs, sigma)
            at_cells = noise.holm_below_cells(level, held.values, held.cells, sigma)
            np.testing.assert_array_equal(held.spread(at_cells), dense)
            np.testing.assert_array_equal(
                held.spread(noise.below(held.values, level, -0.1, held.cells)), noise.below(xs, level, -0.1)
            )
            found += int(dense.sum())
    assert found > 0


def test_the_cells_within_units_get_their_own_yardstick_only_when_it_is_narrower_no_lower_and_well_read() -> None:
    inside = np.ones((1, 2, 2), dtype=bool)
    rng = np.random.default_rng(1)
    quiet = rng.normal(0.0, 0.02, noise.CLASS_SAMPLES)
    level, sigma = noise.within_units(quiet, inside, -0.15, 0.2)
    assert isinstance(level, noise.ByClass) and isinstance(sigma, noise.ByClass)
    assert (level.elsewhere, sigma.elsewhere) == (-0.15, 0.2)  # the cells between units keep the whole's
    assert abs(level.within) < 0.01 and 0.01 < sigma.within < 0.03
    # Too few samples to read a spread from, or one as wide as the whole's: the whole matrix's judges every cell.
    assert noise.within_units(quiet[:-1], inside, -0.15, 0.2) == (-0.15, 0.2)
    assert noise.within_units(rng.normal(0.0, 0.5, 1000), inside, -0.15, 0.2) == (-0.15, 0.2)
    assert noise.within_units(quiet - 0.3, inside, -0.15, 0.2) == (-0.15, 0.2)  # lower: no cell would gain a z


def test_row_statistics_within_a_mask_read_as_over_a_nan_filled_copy() -> None:
    """``noise.upper_median`` and ``upper_quartile`` read the values ``within`` a mask where the judge once
    passed a NaN-filled copy of the matrix; the upper median is the plain sort's middle value (NaN sorts last)."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        shape = tuple(int(d) for d in rng.integers(1, 7, size=int(rng.integers(1, 4))))
        x = np.round(rng.normal(0.0, 1.0, size=shape), 1)  # ties
        draw = rng.random(shape)
        x[draw < 0.2] = np.nan
        x[(draw >= 0.2) & (draw < 0.25)] = -np.inf
        within = rng.random(shape) < 0.7
        filled = np.where(within, x, np.nan)
        ordered = np.sort(filled, axis=-1)
        count = (~np.isnan(ordered)).sum(axis=-1)
        middle = np.take_along_axis(ordered, np.minimum(count // 2, shape[-1] - 1)[..., None], axis=-1)[..., 0]
        want = np.where(count > 0, middle, np.nan)
        assert np.array_equal(noise.upper_median(x, within=within), want, equal_nan=True)
        assert np.array_equal(noise.upper_median(filled), want, equal_nan=True)
        assert np.array_equal(noise.upper_quartile(x, within=within), noise.upper_quartile(filled), equal_nan=True)


def test_link_levels_from_the_cells_measured_read_as_over_the_whole_matrix() -> None:
    """``lone_pairs.link_levels`` reads the cells measured, where it once logged a matrix-sized copy: each link's
    upper quartile, over its partners, of its cells' median log rate (samples that moved nothing left out), within
    units where the cabling is known, then the rail's median for a link with none."""
    rng = np.random.default_rng(29)
    for _ in range(40):
        repeats, nrails, n = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 9))
        busbw = np.exp(rng.normal(5.0, 0.3, size=(repeats, nrails, n, n)))
        draw = rng.random(busbw.shape)
        busbw[draw < 0.4] = np.nan
        busbw[(draw >= 0.4) & (draw < 0.45)] = 0.0
        busbw[:, :, 0] = np.nan  # a link with nothing measured: its rail's median
        between = rng.random((nrails, n, n)) < 0.5 if rng.random() < 0.5 else None
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cell = np.log(np.nanmedian(np.where(busbw > 0, busbw, np.nan), axis=0))
            want = np.nanpercentile(cell, 75, axis=-1)
            if between is not None:
                inside = np.nanpercentile(np.where(between, np.nan, cell), 75, axis=-1)
                want = np.where(np.isnan(inside), want, inside)
            rail = np.nan_to_num(np.nanmedian(want, axis=1), nan=0.0)
        want = np.where(np.isnan(want), rail[:, None], want)
        assert np.array_equal(lone_pairs.link_levels(busbw, between), want), (busbw, between)


def test_log_rates_at_the_measured_values_read_as_over_the_whole_matrix() -> None:
    rng = np.random.default_rng(17)
    values = rng.choice([np.nan, 0.0, -1.0, 3.5, 400.0, 97.25], size=(2, 3, 5, 5))
    scale = np.array([400.0, 200.0, 100.0])[None, :, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = np.log(values / scale)
    plain[values <= 0] = -np.inf
    assert np.array_equal(noise.log_rates(values, scale), plain, equal_nan=True)
    assert np.array_equal(noise.log_rates(values[0, 0], np.ones(1)), noise.log_rates(values, np.ones(1))[0, 0], True)


def test_cells_found_a_word_at_a_time_are_nonzeros_cells() -> None:
    rng = np.random.default_rng(23)
    for shape in ((64, 64), (3, 16, 16), (40,), (5, 7), (2, 3, 4)):
        for density in (0.0, 0.01, 0.5):
            mask = rng.random(shape) < density
            for m in (mask, mask[..., ::-1] if mask.ndim > 1 else mask[::2]):  # and views, contiguous or not
                got, want = sparse.nonzero(m), np.nonzero(m)
                assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
