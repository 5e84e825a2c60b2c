"""``manage.py import_dataset PATH``: validate a dataset bundle and write it all or nothing."""
import time

from django.core.management.base import BaseCommand, CommandError

from registry.datasets.importer import import_bundle


class Command(BaseCommand):
    help = (
        "Import a dataset bundle (a directory or a .zip of CSV files, see dataset-format.md). "
        "Every error is printed as file:row:column: message and nothing is written when there "
        "is any; otherwise everything is written in one transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="bundle directory or .zip")
        parser.add_argument(
            "--ignore-unknown-columns", action="store_true",
            help="skip columns that are not part of the format instead of refusing the bundle",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="validate and report what would change, but write nothing",
        )

    def handle(self, *args, path, ignore_unknown_columns, dry_run, verbosity, **options):
        progress = None
        started = time.monotonic()
        if verbosity >= 1:
            def progress(message):
                self.stderr.write(f"[{time.monotonic() - started:6.1f} s] {message}")
                self.stderr.flush()

        result = import_bundle(
            path, ignore_unknown_columns=ignore_unknown_columns, dry_run=dry_run,
            progress=progress, change_reason=f"import_dataset {path}",
        )
        if result.errors:
            for line in result.error_lines():
                self.stdout.write(line)
            raise CommandError(
                f"{len(result.errors)} error(s) in {path}; nothing was written."
            )
        for name in result.ignored_files:
            self.stderr.write(f"ignored (not a bundle file): {name}")
        for line in result.summary_lines():
            self.stdout.write(line)
        totals = result.totals()
        verdict = "Dry run, nothing written" if dry_run else "Imported"
        self.stdout.write(
            f"{verdict}: {totals.created} created, {totals.updated} updated, "
            f"{totals.unchanged} unchanged ({result.seconds:.1f} s)."
        )
