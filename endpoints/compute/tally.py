"""Per-center tallies that any scope can be summed from.

Why this shape: the registry recomputes pooled figures and every center's figures after a
change. Deriving the per-episode facts (baselines, worst values, AE flags) is the expensive
part, so it runs once; the facts land in one :class:`Cell` per (table, center, group). A scope's
figure is then a sum over its centers' cells: counts add up, and the continuous values are
concatenated before the quantiles are taken (quantiles do not add up, so the values are kept).

Binary endpoints of one unit (episode or patient) are two bit masks: which endpoints it is
evaluable for (it is in the denominator) and which it achieved. A cell keeps every unit's masks
in arrays of 64-bit integers (two appends per unit: units rarely share a pair of masks, so
counting distinct pairs saved nothing) and, when first asked, counts each endpoint's bit over
all of them at once, a byte of every mask side by side, at C speed. The counts become "lane"
integers where every endpoint owns a 32-bit counter, so that one integer addition sums every
endpoint of a cell into a scope at once.
"""
from __future__ import annotations

import struct
import sys
from array import array
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
#: A unit's masks are stored as unsigned 64-bit integers: at most 64 binary endpoints a table.
MASK_BYTES = 8


def lane(index: int) -> int:
    """The unit value of the endpoint at ``index`` in a lane integer."""
    return 1 << (LANE_BITS * index)


#: Lane integers of every byte value at each byte position of a mask.
_BYTE_LANES = [
    [sum(lane(8 * position + bit) for bit in range(8) if value >> bit & 1) for value in range(256)]
    for position in range(MASK_BYTES)
]


class _Spreads(dict):
    """mask -> the mask as a lane integer (bit i becomes 1 in lane i), computed on first use
    (cells share masks)."""

    def __missing__(self, mask: int) -> int:
        if len(self) >= 65536:
            self.clear()
        found = 0
        position = 0
        rest = mask
        while rest:
            found += _BYTE_LANES[position][rest & 255]
            rest >>= 8
            position += 1
        self[mask] = found
        return found


_spread_of = _Spreads().__getitem__


#: Per bit of a byte, a ``bytes.translate`` table: 1 for the byte values that have the bit.
_HAS_BIT = [bytes(value >> bit & 1 for value in range(256)) for bit in range(8)]
#: Where byte ``position`` (bits 8 × position and up) of a mask lies in the array's bytes.
_BYTE_OFFSET = [
    position if sys.byteorder == "little" else MASK_BYTES - 1 - position
    for position in range(MASK_BYTES)
]
#: The counts of the bits of a byte that no mask sets.
_NO_UNITS = (0,) * 8
#: The per-endpoint counts of every bit of a mask, as one lane integer's bytes.
_COUNTS = struct.Struct(f"<{8 * MASK_BYTES}I")
#: Fewer masks than this are summed one by one (the per-bit counting costs a few dozen calls
#: whatever the number of masks).
BY_BIT_FROM = 40


def lane_sum(masks: array) -> int:
    """The sum of the masks as lane integers: per endpoint, the masks that have its bit.

    A few masks are spread one by one (spreads are cached: cells share masks). Many are
    counted bit by bit over one byte of every mask at once (``translate`` and ``count`` on
    the array's bytes), a few dozen C-level calls however many there are: spreading would add
    a wide integer per mask, and most baseline masks (one a patient) are distinct.
    """
    units = len(masks)
    if units < BY_BIT_FROM:
        return sum(map(_spread_of, masks))
    first = masks[0]
    if masks.count(first) == units:  # every patient is evaluable for every baseline row
        return _spread_of(first) * units
    raw = masks.tobytes()
    counts: list[int] = []
    for offset in _BYTE_OFFSET:
        column = raw[offset::MASK_BYTES]
        if column.count(0) == units:
            counts += _NO_UNITS
        else:
            counts += [column.translate(has_bit).count(1) for has_bit in _HAS_BIT]
    return int.from_bytes(_COUNTS.pack(*counts), "little")


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
        if bits > 8 * MASK_BYTES:
            raise ValueError(f"{name}: more binary endpoints than a cell's masks hold")
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

    __slots__ = ("evaluable", "achieved", "rows", "_lanes", "_columns")

    def __init__(self):
        #: per unit, the endpoints it is evaluable for (bit mask)
        self.evaluable = array("Q")
        #: per unit, the endpoints it achieved among those (bit mask)
        self.achieved = array("Q")
        #: one tuple of continuous values (None = not evaluable) per unit
        self.rows: list[tuple] = []
        #: (units, lane sums) and (rows, sorted columns) as last computed: a unit added or
        #: merged since changes the count and so makes them stale, with nothing to reset
        #: in :meth:`add`
        self._lanes = self._columns = None

    @property
    def units(self) -> int:
        return len(self.evaluable)

    def add(self, evaluable: int, achieved: int, values: tuple = ()):
        """One unit: its binary masks and its continuous values (None = not evaluable)."""
        self.evaluable.append(evaluable)
        self.achieved.append(achieved & evaluable)
        if values:
            self.rows.append(values)

    def merge(self, other: Cell) -> None:
        self.evaluable.extend(other.evaluable)
        self.achieved.extend(other.achieved)
        self.rows.extend(other.rows)

    def finish(self, n_continuous: int) -> None:
        """Compute the lane sums and sorted columns now rather than at first use."""
        self.lanes()
        self.columns(n_continuous)

    def lanes(self) -> tuple[int, int]:
        """(evaluable, achieved) lane sums: per endpoint, the units in the denominator and the
        units that achieved it. Computed once per cell."""
        found = self._lanes
        if found is None or found[0] != len(self.evaluable):
            found = self._lanes = (
                len(self.evaluable), lane_sum(self.evaluable), lane_sum(self.achieved)
            )
        return found[1], found[2]

    def columns(self, n_continuous: int) -> list[list]:
        """Each continuous endpoint's non-missing values, transposed and sorted once per cell
        (sorted runs make the scope's merge cheap)."""
        found = self._columns
        if found is None or found[0] != len(self.rows):
            if self.rows:
                columns = [sorted(filter(_present, column)) for column in zip(*self.rows)]
            else:
                columns = [[] for _ in range(n_continuous)]
            found = self._columns = (len(self.rows), columns)
        return found[1]


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


def _sums(spec: TableSpec, cells: list[Cell]):
    """(evaluable lane sum, achieved lane sum, sorted values per continuous endpoint) of some
    cells."""
    if len(cells) == 1:
        cell = cells[0]
        evaluable, achieved = cell.lanes()
        return evaluable, achieved, cell.columns(spec.n_continuous)
    evaluable = achieved = 0
    for cell in cells:
        cell_evaluable, cell_achieved = cell.lanes()
        evaluable += cell_evaluable
        achieved += cell_achieved
    return evaluable, achieved, _merged_columns(
        spec, [cell.columns(spec.n_continuous) for cell in cells]
    )


def _merged_columns(spec: TableSpec, parts: list[list[list]]) -> list[list]:
    """Each continuous endpoint's sorted values of several parts (cells or groups)."""
    return [
        sorted(chain.from_iterable(columns[i] for columns in parts))
        for i in range(spec.n_continuous)
    ]


def _union(spec: TableSpec, sums: list[tuple]):
    """:func:`_sums` of the cells of several groups, from the groups' sums."""
    if len(sums) == 1:
        return sums[0]
    return (
        sum(evaluable for evaluable, _, _ in sums), sum(achieved for _, achieved, _ in sums),
        _merged_columns(spec, [values for _, _, values in sums]),
    )


def table_rows(spec: TableSpec, cells_by_group: dict[str, list[Cell]], groups, method: str):
    """The rows of one table for one scope. ``cells_by_group``: group -> the cells of the
    scope's centers; ``groups``: the groups to report, in order (``all`` included). For a
    table whose ``all`` is the union of its groups (``spec.all_is_union``), ``all`` is summed
    from the groups: from their sums, whose values are already merged (a few long sorted
    runs, cheaper to merge than every cell's, hundreds in a pooled scope).

    Written for speed (a dashboard recompute asks for hundreds of scopes): positional
    ``ResultRow`` arguments, the percentage inlined, no summary for an empty group, and
    groups that only ``all``-only rows would read are not summed.
    """
    stats.check_quantile_method(method)
    if all(slot.all_only for slot in spec.slots):
        groups = [group for group in groups if group == ALL]
    sums = {}
    if spec.all_is_union:
        sums = {
            group: _sums(spec, cells) for group, cells in cells_by_group.items() if group != ALL
        }
        sums[ALL] = _union(spec, list(sums.values())) if sums else _sums(spec, ())
    merged = []
    for group in groups:
        evaluable, achieved, values = sums.get(group) or _sums(spec, cells_by_group.get(group, ()))
        merged.append((group, unpack_lanes(evaluable, spec.n_binary),
                       unpack_lanes(achieved, spec.n_binary), values))
    merged_all = [entry for entry in merged if entry[0] == ALL]
    table = spec.name
    figures_of_sorted = stats.figures_of_sorted
    rows = []
    append = rows.append
    for endpoint, timepoint, kind, index, all_only in spec.slots:
        if kind == BINARY:
            for group, denominators, achieved, _ in merged_all if all_only else merged:
                n = denominators[index]
                count = achieved[index]
                # stats.percent, inlined: 100 × count / n to one decimal, halves up
                percent = ((2000 * count + n) // (2 * n)) / 10 if n else None
                append(ResultRow(table, endpoint, timepoint, group, n, count, percent))
            continue
        for group, _, _, values in merged_all if all_only else merged:
            ordered = values[index]
            if not ordered:
                append(ResultRow(table, endpoint, timepoint, group, 0))
                continue
            n, median, q1, q3, mean, sd = figures_of_sorted(ordered, method)
            if kind == MEAN_SD:
                append(ResultRow(table, endpoint, timepoint, group, n, None, None,
                                 None, None, None, mean, sd))
            else:
                append(ResultRow(table, endpoint, timepoint, group, n, None, None,
                                 median, q1, q3, mean, sd))
    return rows
