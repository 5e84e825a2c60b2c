"""How a snapshot's result rows are stored: as arrays, read back as dicts.

A nightly recompute of 100 centers stores about 560,000 result rows (each scope's rows and
the same again per enrolment year). As JSON objects with spaced separators they were about
100 MB to encode, send and parse as ``jsonb`` — the largest part of storing the snapshots.
As arrays in results.csv's column order, with trailing empty cells left out and no spaces,
they are a third of that, and the dashboard still reads dicts keyed by column name.

The rows are encoded with orjson (:func:`compact_json`): the standard library's encoder took
a third of a nightly part's time in storing its centers' 230,000 rows.
"""
from operator import attrgetter, itemgetter

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from psycopg.types.json import Json

from endpoints.compute.tally import RESULT_COLUMNS


class CompactJSONEncoder(DjangoJSONEncoder):
    """JSON without the spaces after ``,`` and ``:`` (Django's JSONField takes an encoder
    class, not ``json.dumps`` options): what :func:`compact_json` writes, for the databases
    other than PostgreSQL."""

    def __init__(self, *args, **kwargs):
        kwargs["separators"] = (",", ":")
        super().__init__(*args, **kwargs)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def compact_json(value):
    """``value`` as compact JSON (bytes), by orjson. A value orjson leaves to the caller
    (decimals, and dates and times so that they read as Django writes them) is encoded as
    :class:`DjangoJSONEncoder` would."""
    return orjson.dumps(value, default=_django_default, option=_ORJSON_OPTIONS)


_django_default = DjangoJSONEncoder().default


_attributes = attrgetter(*RESULT_COLUMNS)
_items = itemgetter(*RESULT_COLUMNS)


def pack_row(row):
    """A result row (dict, or an object with the columns as attributes) as a JSON array."""
    values = list(_items(row) if isinstance(row, dict) else _attributes(row))
    while values[-1] is None:  # the first four columns are never empty
        values.pop()
    return values


def unpack_row(values):
    """The dict of a stored row; a row stored as a dict (before this format) as it is."""
    if isinstance(values, dict):
        return values
    row = dict.fromkeys(RESULT_COLUMNS)
    row.update(zip(RESULT_COLUMNS, values))
    return row


def pack_rows(rows):
    return None if rows is None else [pack_row(row) for row in rows]


def unpack_rows(stored):
    return None if stored is None else [unpack_row(values) for values in stored]


class TextJSONField(models.JSONField):
    """JSON stored as PostgreSQL's ``json`` (the text, checked) rather than ``jsonb``.

    Result rows are written as a whole and read as a whole (or one enrolment year's with
    ``->``, which ``json`` has too); ``jsonb`` would turn every one of their numbers into a
    ``numeric`` on the way in, which was most of PostgreSQL's time in storing a snapshot
    (a center's years: 3.5 ms as ``json``, 8-9.5 ms as ``jsonb``). Other databases keep
    Django's JSON column.
    """

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        return Json(value, dumps=compact_json)

    def from_db_value(self, value, expression, connection):
        if value is not None and not isinstance(value, str):
            return value  # psycopg decodes ``json`` itself (Django only asks it not to for jsonb)
        return super().from_db_value(value, expression, connection)


class ResultRowsField(TextJSONField):
    """A list of result rows, stored packed (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("encoder", CompactJSONEncoder)
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value):
        return super().get_prep_value(pack_rows(value))

    def from_db_value(self, value, expression, connection):
        return unpack_rows(super().from_db_value(value, expression, connection))


class RowsByYearField(TextJSONField):
    """Enrolment year -> result rows, each year's rows stored packed (a query reading one
    year's rows gives its expression a :class:`ResultRowsField` output field)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("encoder", CompactJSONEncoder)
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value):
        if value is not None:
            value = {year: pack_rows(rows) for year, rows in value.items()}
        return super().get_prep_value(value)

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        if value is None:
            return None
        return {year: unpack_rows(rows) for year, rows in value.items()}
