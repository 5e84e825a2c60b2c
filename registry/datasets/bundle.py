"""Reading a dataset bundle: a directory or a ``.zip`` of UTF-8 CSV files (dataset-format.md).

This module knows the container and the cell syntax, nothing of the registry's rules: it opens
the bundle, checks each header against ``columns.FILES``, and turns a cell into the Python
value of its model field (``parse_cell``; ``format_cell`` is the inverse, for writers). What a
value may be — ranges, codes, dates in the past, references — is the models' business, applied
by ``registry.datasets.importer``.
"""
from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path, PurePosixPath

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from registry.core.fields import CodeListField

from .columns import FILE_BY_NAME, FILE_NAMES

#: A zip whose bundle files would inflate beyond this is refused (zip bombs, wrong file).
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024

LIST_SEPARATOR = ";"
YES, NO = "yes", "no"
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class BundleError:
    """One refused thing: ``file:row:column: message``.

    ``row`` is the CSV row number counting the header as row 1 (``None`` for a problem with the
    whole file or bundle); ``column`` is the CSV column name ("" when the problem is the row
    as a whole).
    """

    file: str
    row: int | None
    column: str
    message: str

    def __str__(self):
        where = [self.file or _("bundle")]
        if self.row is not None:
            where.append(str(self.row))
            if self.column:
                where.append(self.column)
        return f"{':'.join(str(part) for part in where)}: {self.message}"

    @property
    def sort_key(self):
        order = FILE_NAMES.index(self.file) if self.file in FILE_NAMES else -1
        return (order, self.row or 0)


class UnreadableBundle(Exception):
    """The bundle, or one of its files, cannot be read at all."""

    def __init__(self, message, *, file="", row=None):
        super().__init__(str(message))
        self.error = BundleError(file, row, "", str(message))


@dataclass
class CsvRow:
    line: int
    cells: dict[str, str]


@dataclass
class CsvFile:
    name: str
    header: list[str]
    rows: list[CsvRow] = field(default_factory=list)
    #: Problems with the header (reported on row 1) and with the shape of rows.
    errors: list[BundleError] = field(default_factory=list)
    #: The columns the rows are read from (known columns of the header, once each).
    columns: list[str] = field(default_factory=list)


class Bundle:
    """The CSV files of a bundle directory or zip (files at the root of the zip or inside one
    folder of it, as when a folder is zipped). Use as a context manager."""

    def __init__(self, path):
        self.path = Path(path)
        self._zip = None
        self._members = {}  # bundle file name -> zip member name
        self.ignored_files = []
        if self.path.is_dir():
            self._read_directory()
        elif self.path.is_file():
            self._read_zip()
        else:
            raise UnreadableBundle(_("%(path)s: no such file or directory.") % {"path": self.path.name})
        if not self.present_files:
            raise UnreadableBundle(
                _("No bundle file found (expected one or more of %(files)s).")
                % {"files": ", ".join(FILE_NAMES)}
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _read_directory(self):
        for child in sorted(self.path.iterdir()):
            if child.name in FILE_BY_NAME and child.is_file():
                self._members[child.name] = child
            elif not child.name.startswith("."):
                self.ignored_files.append(child.name)

    def _read_zip(self):
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError):
            raise UnreadableBundle(_("%(path)s is neither a directory nor a zip file.") % {"path": self.path.name})
        unsafe = [name for name in self._zip.namelist() if _leaves_its_folder(name)]
        if unsafe:
            # Nothing is extracted, but a zip that would write outside its folder when unpacked
            # is not a bundle anyone made by zipping a folder: refused whole.
            self.close()
            raise UnreadableBundle(
                _("The zip holds a file whose name leaves its folder (%(name)s): refused.")
                % {"name": unsafe[0]}
            )
        names = [
            name for name in self._zip.namelist()
            if not name.endswith("/") and "__MACOSX" not in name
            and not PurePosixPath(name).name.startswith(".")
        ]
        folders = {str(PurePosixPath(name).parent) for name in names if PurePosixPath(name).name in FILE_BY_NAME}
        if not folders:
            return
        # The shallowest folder holding a bundle file is the bundle.
        folder = min(folders, key=lambda f: (0 if f == "." else f.count("/") + 1, f))
        total = 0
        for name in names:
            path = PurePosixPath(name)
            if str(path.parent) == folder and path.name in FILE_BY_NAME:
                self._members[path.name] = name
                total += self._zip.getinfo(name).file_size
            else:
                self.ignored_files.append(name)
        if total > MAX_UNCOMPRESSED_BYTES:
            raise UnreadableBundle(
                _("The bundle files would take %(size)s MB uncompressed; the limit is %(limit)s MB.")
                % {"size": total // 2**20, "limit": MAX_UNCOMPRESSED_BYTES // 2**20}
            )

    @property
    def present_files(self):
        return [name for name in FILE_NAMES if name in self._members]

    def _text(self, name):
        member = self._members[name]
        raw = member.read_bytes() if self._zip is None else self._zip.read(member)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise UnreadableBundle(
                _("The file is not UTF-8 text (byte %(position)s).") % {"position": error.start},
                file=name,
            )

    def read(self, name, *, ignore_unknown_columns=False):
        """The rows of one bundle file (``None`` when the bundle has no such file)."""
        if name not in self._members:
            return None
        spec = FILE_BY_NAME[name]
        reader = csv.reader(io.StringIO(self._text(name), newline=""), strict=True)
        try:
            # An empty file has no header: its required columns are reported missing.
            header = [cell.strip() for cell in next(reader, None) or []]
            csv_file = CsvFile(name, header)
            seen = set()
            for column in header:
                if column in seen:
                    csv_file.errors.append(BundleError(name, 1, column, str(_("The column is given twice."))))
                elif column not in spec.column_names:
                    if not ignore_unknown_columns:
                        csv_file.errors.append(BundleError(name, 1, column, str(_("Unknown column."))))
                else:
                    csv_file.columns.append(column)
                seen.add(column)
            for column in spec.required_columns:
                if column not in seen:
                    csv_file.errors.append(
                        BundleError(name, 1, column, str(_("This required column is missing.")))
                    )
            positions = {column: header.index(column) for column in csv_file.columns}
            line = 1
            for cells in reader:
                line += 1
                if not any(cell.strip() for cell in cells):
                    continue  # blank line or a spreadsheet's empty row
                if len(cells) != len(header):
                    csv_file.errors.append(BundleError(
                        name, line, "",
                        str(_("This row has %(cells)s cells but the header has %(columns)s.")
                            % {"cells": len(cells), "columns": len(header)}),
                    ))
                csv_file.rows.append(CsvRow(line, {
                    column: cells[index] for column, index in positions.items() if index < len(cells)
                }))
        except csv.Error as error:
            raise UnreadableBundle(
                _("Not a valid CSV file: %(error)s") % {"error": error}, file=name, row=reader.line_num
            )
        return csv_file


def _leaves_its_folder(name):
    """An absolute zip member name, or one with a ``..`` part (``/`` or ``\\`` separated)."""
    parts = name.replace("\\", "/").split("/")
    drive = len(parts[0]) == 2 and parts[0][1] == ":"  # C:/...
    return name.startswith(("/", "\\")) or drive or ".." in parts


# Cells ------------------------------------------------------------------------------------


def _invalid(field, text):
    return ValidationError(field.error_messages["invalid"], code="invalid", params={"value": text})


def parse_cell(field, text):
    """The value of ``field`` that a CSV cell means, or ``ValidationError`` with the model
    field's message (bundle-specific syntax — yes/no, ``;`` lists, strict ISO dates — has its
    own message).

    An empty cell is missing: ``None``, or ``""`` for a text field that stores no NULL; in a
    list column it is the empty list ("none of the items").
    """
    text = (text or "").strip()
    if "\x00" in text:
        # PostgreSQL cannot store it in text, and no registry value contains one.
        raise ValidationError(_("Null characters are not allowed."), code="null_characters_not_allowed")
    if isinstance(field, CodeListField):
        return [code.strip() for code in text.split(LIST_SEPARATOR) if code.strip()]
    if not text:
        if isinstance(field, (models.CharField, models.TextField)) and not field.null:
            return ""
        return None
    if isinstance(field, models.BooleanField):
        if text == YES:
            return True
        if text == NO:
            return False
        raise ValidationError(
            _("“%(value)s” is not yes or no (leave the cell empty when not known)."),
            code="invalid", params={"value": text},
        )
    if isinstance(field, models.DateField):
        if not ISO_DATE.match(text):
            raise _invalid(field, text)
        return field.to_python(text)
    if isinstance(field, models.FloatField):
        value = field.to_python(text)
        if not math.isfinite(value):
            raise _invalid(field, text)
        return value
    if isinstance(field, models.ForeignKey):
        return text  # a reference: the code, resolved by the importer
    return field.to_python(text)


def format_cell(field, value):
    """The CSV cell for ``value`` of ``field``: the inverse of ``parse_cell``."""
    if isinstance(field, CodeListField):
        return LIST_SEPARATOR.join(value or ())
    if value is None:
        return ""
    if isinstance(field, models.BooleanField):
        return YES if value else NO
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, float):
        return repr(value)
    return str(value)
