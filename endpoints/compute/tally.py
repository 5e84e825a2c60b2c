"""Per-center tallies that any scope can be summed from.

Why this shape: the registry recomputes pooled figures and every center's figures after a
change. Deriving the per-episode facts (baselines, worst values, AE flags) is the expensive
part, so it runs once; the facts land in one :class:`Cell` per (table, center, group). A scope's
figure is then a sum over its centers' cells: counts add up, and the continuous values are
concatenated before the quantiles are taken (quantiles do not add up, so the values are kept).

Binary endpoints of one unit (episode or patient) are two bit masks: which endpoints it is
evaluable for (it is in the denominator) and which it achieved. A cell counts the units per
distinct pair of masks (one dictionary update per unit) and, when first asked, turns them into
"lane" integers where every endpoint owns a 32-bit counter, so that one integer addition sums
every endpoint of a cell into a scope at once.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import partial
from itertools import chain
from operator import is_not
from typing import NamedTuple

from . import stats

#: Row kinds: a count with a denominator; a continuous summary with median, quartiles, mean
#: and SD; a continuous summary reported as mean ± SD only (000's Figure 1 time course).
BINARY, CONTINUOUS, MEAN_SD = "binary", "continuous", "mean_sd"
#: The group that holds every unit of the scope.
ALL = "all"
_present = partial(is_not, None)
#: Width of one endpoint's counter in the lane integers (an unsigned 32-bit integer: up to
#: 4 billion units per cell).
LANE_BITS = 32


def lane(index: int) -> int:
    """The unit value of the endpoint at ``index`` in a lane integer."""
    return 1 << (LANE_BITS * index)


#: Lane integers of every byte value at each byte position of a mask.
_BYTE_LANES = [
    [sum(lane(8 * position + bit) for bit in range(8) if value >> bit & 1) for value in range(256)]
    for position in range(16)
]
_spread_cache: dict[int, int] = {}


def spread(mask: int) -> int:
    """A bit mask as a lane integer: bit i becomes 1 in lane i."""
    found = _spread_cache.get(mask)
    if found is None:
        found = 0
        position = 0
        rest = mask
        while rest:
            found += _BYTE_LANES[position][rest & 255]
            rest >>= 8
            position += 1
        if len(_spread_cache) >= 65536:
            _spread_cache.clear()
        _spread_cache[mask] = found
    return found


def unpack_lanes(total: int, count: int) -> tuple[int, ...]:
    """The per-endpoint counts held in a lane integer."""
    return struct.unpack(f"<{count}I", total.to_bytes(4 * count, "little"))


class Slot(NamedTuple):
    """One endpoint at one timepoint: one results row per group."""

    endpoint: str
    timepoint: str
    kind: str
    #: bit of a binary endpoint in the masks, or position among the continuous values
    index: int
    #: reported for the group ``all`` only
    all_only: bool = False


class TableSpec:
    """The rows of one results table, in the order the dashboard shows them."""

    def __init__(self, name: str, rows, *, groups_from_units: bool = False,
                 all_is_union: bool = False):
        """``rows``: (endpoint, timepoint, kind[, all_only]) in display order.

        ``groups_from_units``: list only the groups that hold a unit of this table (for the
        escalation table, whose units are the episodes that reach the high dose) rather than
        every group that has episodes.

        ``all_is_union``: every unit is in exactly one start-dose group (an episode), so the
        group ``all`` is summed from the group cells and needs no cell of its own. Not so for
        patients, who are in the group of each of their episodes, nor for tables reported for
        ``all`` only.
        """
        self.name = name
        self.groups_from_units = groups_from_units
        self.all_is_union = all_is_union
        slots = []
        bits = values = 0
        for endpoint, timepoint, kind, *flags in rows:
            all_only = bool(flags and flags[0])
            if kind == BINARY:
                slots.append(Slot(endpoint, timepoint, kind, bits, all_only))
                bits += 1
            else:
                slots.append(Slot(endpoint, timepoint, kind, values, all_only))
                values += 1
        if bits > 8 * len(_BYTE_LANES):
            raise ValueError(f"{name}: more binary endpoints than spread() handles")
        self.slots = tuple(slots)
        self.n_binary = bits
        self.n_continuous = values
        self.binary_index = {(s.endpoint, s.timepoint): s.index for s in slots if s.kind == BINARY}

    def bit(self, endpoint: str, timepoint: str = "") -> int:
        """The bit of a binary endpoint in a unit's evaluable / achieved masks."""
        return 1 << self.binary_index[(endpoint, timepoint)]

    @property
    def every_binary(self) -> int:
        """The mask of a unit evaluable for every binary endpoint."""
        return (1 << self.n_binary) - 1


class Cell:
    """The units of one table in one center and one group."""

    __slots__ = ("units", "masks", "rows", "_lanes", "_columns")

    def __init__(self):
        self.units = 0
        #: (evaluable mask, achieved mask) -> units with exactly those masks
        self.masks: dict[tuple[int, int], int] = {}
        #: one tuple of continuous values (None = not evaluable) per unit
        self.rows: list[tuple] = []
        self._lanes = None
        self._columns = None

    def add(self, evaluable: int, achieved: int, values: tuple = ()):
        """One unit: its binary masks and its continuous values (None = not evaluable)."""
        self.units += 1
        key = (evaluable, achieved & evaluable)
        masks = self.masks
        masks[key] = masks.get(key, 0) + 1
        if values:
            self.rows.append(values)
        self._lanes = self._columns = None

    def merge(self, other: Cell) -> None:
        self.units += other.units
        for key, units in other.masks.items():
            self.masks[key] = self.masks.get(key, 0) + units
        self.rows.extend(other.rows)
        self._lanes = self._columns = None

    def finish(self, n_continuous: int) -> None:
        """Compute the lane sums and sorted columns now rather than at first use."""
        self.lanes()
        self.columns(n_continuous)

    def lanes(self) -> tuple[int, int]:
        """(evaluable, achieved) lane sums: per endpoint, the units in the denominator and the
        units that achieved it. Computed once per cell, from the distinct mask pairs."""
        if self._lanes is None:
            evaluable = achieved = 0
            for (evaluable_mask, achieved_mask), units in self.masks.items():
                evaluable += spread(evaluable_mask) * units
                achieved += spread(achieved_mask) * units
            self._lanes = (evaluable, achieved)
        return self._lanes

    def columns(self, n_continuous: int) -> list[list]:
        """Each continuous endpoint's non-missing values, transposed and sorted once per cell
        (sorted runs make the scope's merge cheap)."""
        if self._columns is None:
            if self.rows:
                self._columns = [
                    sorted(filter(_present, column)) for column in zip(*self.rows)
                ]
            else:
                self._columns = [[] for _ in range(n_continuous)]
        return self._columns


@dataclass(slots=True)
class ResultRow:
    """One reported figure: exactly the columns of results.csv (endpoints.md)."""

    table: str
    endpoint: str
    timepoint: str
    group: str
    n: int
    count: int | None = None
    percent: float | None = None
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    mean: float | None = None
    sd: float | None = None


RESULT_COLUMNS = (
    "table", "endpoint", "timepoint", "group", "n", "count", "percent", "median", "q1", "q3",
    "mean", "sd",
)


def _merge(spec: TableSpec, cells: list[Cell]):
    """(denominators, counts, sorted values per continuous endpoint) of some cells."""
    evaluable = achieved = 0
    for cell in cells:
        cell_evaluable, cell_achieved = cell.lanes()
        evaluable += cell_evaluable
        achieved += cell_achieved
    if len(cells) == 1:
        values = cells[0].columns(spec.n_continuous)
    else:
        per_cell = [cell.columns(spec.n_continuous) for cell in cells]
        values = [
            sorted(chain.from_iterable(columns[i] for columns in per_cell))
            for i in range(spec.n_continuous)
        ]
    return unpack_lanes(evaluable, spec.n_binary), unpack_lanes(achieved, spec.n_binary), values


def table_rows(spec: TableSpec, cells_by_group: dict[str, list[Cell]], groups, method: str):
    """The rows of one table for one scope. ``cells_by_group``: group -> the cells of the
    scope's centers; ``groups``: the groups to report, in order (``all`` included).

    Written for speed (a dashboard recompute asks for hundreds of scopes): positional
    ``ResultRow`` arguments, the percentage inlined, no summary for an empty group.
    """
    stats.check_quantile_method(method)
    merged = {group: _merge(spec, cells_by_group.get(group, ())) for group in groups}
    table = spec.name
    summary_of_sorted = stats.summary_of_sorted
    rows = []
    append = rows.append
    for endpoint, timepoint, kind, index, all_only in spec.slots:
        for group in (ALL,) if all_only else groups:
            if all_only and group not in merged:
                continue
            denominators, achieved, values = merged[group]
            if kind == BINARY:
                n = denominators[index]
                count = achieved[index]
                # stats.percent, inlined: 100 × count / n to one decimal, halves up
                percent = ((2000 * count + n) // (2 * n)) / 10 if n else None
                append(ResultRow(table, endpoint, timepoint, group, n, count, percent))
                continue
            ordered = values[index]
            if not ordered:
                append(ResultRow(table, endpoint, timepoint, group, 0))
                continue
            summary = summary_of_sorted(ordered, method)
            if kind == MEAN_SD:
                append(ResultRow(table, endpoint, timepoint, group, summary.n, None, None,
                                 None, None, None, summary.mean, summary.sd))
            else:
                append(ResultRow(table, endpoint, timepoint, group, summary.n, None, None,
                                 summary.median, summary.q1, summary.q3, summary.mean,
                                 summary.sd))
    return rows
