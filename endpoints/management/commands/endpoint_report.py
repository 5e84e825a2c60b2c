"""Write results.csv (endpoints.md, long format) for the whole registry or some centers."""
import sys

from django.core.management.base import BaseCommand, CommandError

from endpoints.compute.report import compute_report, write_results_csv
from endpoints.models import StudySettings
from endpoints.selectors import load_cohort
from registry.centers.models import Center


class Command(BaseCommand):
    help = "Compute the cohort endpoints and write results.csv (stdout when no --output)."

    def add_arguments(self, parser):
        parser.add_argument("--center", action="append", dest="centers", metavar="CODE",
                            help="Restrict to this center (repeat for several; default: all pooled).")
        parser.add_argument("--output", metavar="FILE", help="Write to FILE instead of stdout.")
        parser.add_argument("--quantile-method", choices=["type7", "type6"],
                            help="Quartile method (default: the study setting).")

    def handle(self, *args, centers=None, output=None, quantile_method=None, **options):
        if centers:
            known = set(Center.objects.filter(code__in=centers).values_list("code", flat=True))
            unknown = sorted(set(centers) - known)
            if unknown:
                raise CommandError(f"unknown center(s): {', '.join(unknown)}")
        method = quantile_method or StudySettings.current().quantile_method
        rows = compute_report(load_cohort(centers), quantile_method=method)
        if output:
            with open(output, "w", newline="", encoding="utf-8") as file:
                write_results_csv(rows, file)
        else:
            write_results_csv(rows, self.stdout)
        scope = ", ".join(centers) if centers else "all centers pooled"
        self.stderr.write(f"{len(rows)} rows for {scope}; quartiles: {method}.")
