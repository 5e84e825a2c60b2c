"""Reading an export zip in tests, and a Table Schema check of its datapackage.json."""
import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import date
from pathlib import Path

BUNDLE_FILES = (
    "centers.csv", "lab_ranges.csv", "patients.csv", "prior_treatments.csv", "episodes.csv",
    "dose_changes.csv", "visits.csv", "adverse_events.csv",
)


class Export:
    """An export zip opened whole: its members by name inside the export's folder."""

    def __init__(self, path):
        self.path = Path(path)
        with zipfile.ZipFile(self.path) as archive:
            assert archive.testzip() is None
            self.names = archive.namelist()
            self.data = {name: archive.read(name) for name in self.names}
        folders = {name.split("/")[0] for name in self.names}
        assert len(folders) == 1, folders
        self.folder = folders.pop()
        self.files = sorted(name.split("/", 1)[1] for name in self.names)

    def member(self, name):
        return self.data[f"{self.folder}/{name}"]

    def text(self, name):
        return self.member(name).decode("utf-8")

    def table(self, name):
        """(header, rows as lists of cells)."""
        rows = list(csv.reader(io.StringIO(self.text(name), newline="")))
        return rows[0], rows[1:]

    def dicts(self, name):
        return list(csv.DictReader(io.StringIO(self.text(name), newline="")))

    def package(self):
        return json.loads(self.text("datapackage.json"))


TABLE_SCHEMA_TYPES = {"string", "number", "integer", "boolean", "date"}
CONSTRAINTS = {"required", "enum", "minimum", "maximum", "pattern", "maxLength"}
NAME = re.compile(r"^[a-z0-9._-]+$")


def check_cell(field, cell):
    """The problem with one non-empty cell under its Table Schema field, or None."""
    kind = field["type"]
    constraints = field.get("constraints", {})
    value = cell
    try:
        if kind == "integer":
            value = int(cell)
            if str(value) != cell.lstrip("+"):
                return f"not an integer: {cell!r}"
        elif kind == "number":
            value = float(cell)
        elif kind == "date":
            value = date.fromisoformat(cell)
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", cell):
                return f"not an ISO date: {cell!r}"
        elif kind == "boolean":
            if cell not in field["trueValues"] + field["falseValues"]:
                return f"not a boolean: {cell!r}"
    except ValueError:
        return f"not a {kind}: {cell!r}"
    if "enum" in constraints and cell not in constraints["enum"]:
        return f"not in enum: {cell!r}"
    if "pattern" in constraints and not re.fullmatch(constraints["pattern"], cell):
        return f"does not match {constraints['pattern']}: {cell!r}"
    if "minimum" in constraints and value < constraints["minimum"]:
        return f"below {constraints['minimum']}: {cell!r}"
    if "maximum" in constraints and value > constraints["maximum"]:
        return f"above {constraints['maximum']}: {cell!r}"
    if "maxLength" in constraints and len(cell) > constraints["maxLength"]:
        return f"longer than {constraints['maxLength']}"
    return None


def validate_package(export: Export):
    """Every problem of datapackage.json and of the files it describes (empty when valid):
    descriptor shape, paths, sizes and hashes, headers, cell types and constraints, primary
    keys and foreign keys."""
    errors = []
    package = export.package()
    if package.get("profile") != "tabular-data-package":
        errors.append("profile")
    resources = package["resources"]
    names = [resource["name"] for resource in resources]
    if len(set(names)) != len(names) or not all(NAME.match(name) for name in names):
        errors.append(f"resource names {names}")
    tables = {}
    for resource in resources:
        path = resource["path"]
        if f"{export.folder}/{path}" not in export.data:
            errors.append(f"{path}: not in the zip")
            continue
        raw = export.member(path)
        if "bytes" in resource and resource["bytes"] != len(raw):
            errors.append(f"{path}: bytes")
        if "hash" in resource and resource["hash"] != "sha256:" + hashlib.sha256(raw).hexdigest():
            errors.append(f"{path}: hash")
        if resource.get("profile") != "tabular-data-resource":
            continue
        schema = resource["schema"]
        fields = schema["fields"]
        for field in fields:
            if field["type"] not in TABLE_SCHEMA_TYPES:
                errors.append(f"{path}: {field['name']} type {field['type']}")
            if set(field.get("constraints", {})) - CONSTRAINTS:
                errors.append(f"{path}: {field['name']} constraints")
        header, rows = export.table(path)
        if header != [field["name"] for field in fields]:
            errors.append(f"{path}: header {header} != schema")
            continue
        tables[resource["name"]] = (header, rows)
        for line, row in enumerate(rows, start=2):
            if len(row) != len(fields):
                errors.append(f"{path}:{line}: {len(row)} cells")
                continue
            for field, cell in zip(fields, row):
                if cell in schema.get("missingValues", [""]):
                    if field.get("constraints", {}).get("required"):
                        errors.append(f"{path}:{line}:{field['name']}: required")
                    continue
                problem = check_cell(field, cell)
                if problem:
                    errors.append(f"{path}:{line}:{field['name']}: {problem}")
        key = schema.get("primaryKey")
        if key:
            key = [key] if isinstance(key, str) else key
            positions = [header.index(name) for name in key]
            seen = [tuple(row[i] for i in positions) for row in rows]
            if len(set(seen)) != len(seen):
                errors.append(f"{path}: primary key {key} not unique")
    for resource in resources:
        if resource.get("profile") != "tabular-data-resource" or resource["name"] not in tables:
            continue
        header, rows = tables[resource["name"]]
        for foreign in resource["schema"].get("foreignKeys", []):
            target = foreign["reference"]["resource"]
            if target not in tables:
                errors.append(f"{resource['name']}: foreign key to unknown {target}")
                continue
            target_header, target_rows = tables[target]
            known = {row[target_header.index(foreign["reference"]["fields"])] for row in target_rows}
            position = header.index(foreign["fields"])
            missing = {row[position] for row in rows if row[position] and row[position] not in known}
            if missing:
                errors.append(f"{resource['name']}.{foreign['fields']}: unknown {sorted(missing)[:3]}")
    return errors
