"""``datapackage.json``: the bundle as a Frictionless Data Package, so tools load it typed.

One tabular resource per CSV (path, dialect, bytes and sha256 of the file as written), each
with a Table Schema built from the same column descriptions as the data dictionary:
typed fields (yes/no booleans with their true/false values), constraints (required, enum,
minimum, maximum, pattern, maxLength), the primary key where the file's identity columns
are all required, and the foreign keys of its reference columns.

List columns (``special_areas``, comorbidities) are ``;``-separated codes: typed ``string``
with a pattern that admits only the vocabulary, since Table Schema v1 has no list type.
"""
from __future__ import annotations

import json
import re

from .columns import FILE_BY_NAME
from .dictionary import BOOLEAN, DECIMAL, INTEGER, LIST, NO, YES, ColumnInfo

PROFILE = "tabular-data-package"


def _constraint_number(info, value):
    if info.kind == INTEGER:
        return int(value)
    number = float(value)
    return int(number) if number.is_integer() else number


def list_pattern(codes):
    item = "(?:" + "|".join(re.escape(code) for code in codes) + ")"
    return f"^(?:{item}(?:;{item})*)?$"


def schema_field(info: ColumnInfo) -> dict:
    field = {
        "name": info.name,
        "title": info.label,
        "type": info.table_schema_type,
    }
    if info.note:
        field["description"] = info.note
    if info.unit:
        field["unit"] = info.unit
    if info.kind == BOOLEAN:
        field["trueValues"] = [YES]
        field["falseValues"] = [NO]
    if info.kind == DECIMAL and info.decimal_places is not None:
        field["decimalPlaces"] = info.decimal_places
    constraints = {}
    if info.required:
        constraints["required"] = True
    if info.kind == LIST:
        constraints["pattern"] = list_pattern([code for code, _label in info.codes])
    elif info.codes:
        constraints["enum"] = [code for code, _label in info.codes]
    elif info.pattern:
        constraints["pattern"] = info.pattern
    if info.minimum is not None:
        constraints["minimum"] = _constraint_number(info, info.minimum)
    if info.maximum is not None:
        constraints["maximum"] = _constraint_number(info, info.maximum)
    if info.max_length and not info.codes:
        constraints["maxLength"] = info.max_length
    if constraints:
        field["constraints"] = constraints
    return field


def table_schema(file_name, infos) -> dict:
    spec = FILE_BY_NAME[file_name]
    names = [info.name for info in infos]
    schema = {"fields": [schema_field(info) for info in infos], "missingValues": [""]}
    required = {info.name for info in infos if info.required}
    if set(spec.identity) <= required and set(spec.identity) <= set(names):
        key = list(spec.identity)
        schema["primaryKey"] = key[0] if len(key) == 1 else key
    foreign_keys = []
    for info in infos:
        if info.reference:
            target_file, target_column = info.reference
            foreign_keys.append({
                "fields": info.name,
                "reference": {"resource": resource_name(target_file), "fields": target_column},
            })
    if foreign_keys:
        schema["foreignKeys"] = foreign_keys
    return schema


def resource_name(file_name):
    return file_name.removesuffix(".csv")


def datapackage(described, *, name, title, description, created, files, extra_resources=()):
    """The package descriptor. ``files``: CSV name -> {"bytes", "sha256", "line_terminator"}
    of the written file; ``extra_resources``: further (non-tabular) resources to list."""
    resources = []
    for file_name, infos in described.items():
        written = files[file_name]
        resources.append({
            "name": resource_name(file_name),
            "path": file_name,
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "bytes": written["bytes"],
            "hash": f"sha256:{written['sha256']}",
            "dialect": {
                "delimiter": ",", "doubleQuote": True, "quoteChar": '"',
                "lineTerminator": written["line_terminator"], "header": True,
            },
            "schema": table_schema(file_name, infos),
        })
    resources.extend(extra_resources)
    return {
        "profile": PROFILE,
        "name": name,
        "title": title,
        "description": description,
        "created": created,
        "version": "1",
        "resources": resources,
    }


def dumps(package) -> str:
    return json.dumps(package, indent=2, ensure_ascii=False, default=str) + "\n"
