"""``manage.py export_dataset --output FILE.zip``: the pooled dataset export, from the shell.

The same zip as the export page (bundle CSVs, data dictionary, datapackage.json, optionally
Excel and Parquet), for every center or the ``--center`` ones, recorded as a command-line
export (no user). See ``registry/datasets/exporter.py`` for what filters and options do.
"""
import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from endpoints.compute.vocabulary import DRUGS
from registry.datasets.exporter import ExportOptions, ExportRefused
from registry.datasets.exports import command_export


def iso_date(text):
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not an ISO date (YYYY-MM-DD): {text}")


class Command(BaseCommand):
    help = (
        "Export the registry as a dataset bundle zip (dataset-format.md) with a data dictionary "
        "and datapackage.json. Filters select patients, each with all their records."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="the .zip to write (replaced)")
        parser.add_argument(
            "--center", action="append", dest="centers", metavar="CODE",
            help="export this center (repeat for several; default: every center)",
        )
        parser.add_argument(
            "--drug", choices=DRUGS,
            help="only patients with at least one episode of this drug (with all their records)",
        )
        parser.add_argument("--enrolled-from", type=iso_date, metavar="DATE",
                            help="only patients enrolled on or after DATE")
        parser.add_argument("--enrolled-to", type=iso_date, metavar="DATE",
                            help="only patients enrolled on or before DATE")
        parser.add_argument("--shift-dates", action="store_true",
                            help="move each patient's dates back by a random per-patient offset")
        parser.add_argument("--free-text", action="store_true",
                            help="include adverse-event descriptions (left out by default)")
        parser.add_argument("--excel", action="store_true", help="add an Excel workbook")
        parser.add_argument("--parquet", action="store_true", help="add Parquet files")

    def handle(self, *args, output, centers, drug, enrolled_from, enrolled_to, shift_dates,
               free_text, excel, parquet, verbosity, **unused):
        if enrolled_from and enrolled_to and enrolled_to < enrolled_from:
            raise CommandError("--enrolled-to is before --enrolled-from")
        options = ExportOptions(
            centers=tuple(dict.fromkeys(centers)) if centers else None, drug=drug,
            enrolled_from=enrolled_from, enrolled_to=enrolled_to, shift_dates=shift_dates,
            free_text=free_text, excel=excel, parquet=parquet,
        )
        started = time.monotonic()
        progress = None
        if verbosity >= 2:
            last = {"at": 0.0}

            def progress(done, total, stage):
                now = time.monotonic()
                if now - last["at"] >= 1 or done == total:
                    last["at"] = now
                    self.stderr.write(f"[{now - started:6.1f} s] {stage}: {done}/{total} rows")

        try:
            record, result = command_export(output, options, progress=progress)
        except ExportRefused as error:
            raise CommandError(str(error))
        width = max(len(name) for name in result.row_counts)
        for name, rows in result.row_counts.items():
            self.stdout.write(f"{name:<{width}}  {rows:>9} rows")
        self.stdout.write(
            f"Exported {len(result.center_codes)} center(s) to {result.path} "
            f"({result.size} bytes, sha256 {result.sha256}) in {result.seconds:.1f} s; "
            f"export record #{record.pk}."
        )
