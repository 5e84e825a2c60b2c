"""Load demo centers, one account per role and a synthetic cohort. Safe to run again."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from endpoints.services import recompute_all_scopes, recompute_once
from registry.centers.models import Center, LabRange, Membership
from registry.clinical.models import Patient
from registry.clinical.synthetic import REFERENCE_RANGES, build_cohort, save_cohort
from registry.core.scoping import Role

DEMO_PASSWORD = "registry-demo"
CENTERS = (
    ("fr-tls", "CHU de Toulouse", "FR"),
    ("fr-nte", "CHU de Nantes", "FR"),
    ("es-bcn-hsc", "Hospital Universitari Sagrat Cor, Barcelona", "ES"),
    ("es-grx", "Hospital Universitario San Cecilio, Granada", "ES"),
)
#: username, center code (None: study-wide), role, coordinator, staff
ACCOUNTS = (
    ("investigator-a", "fr-tls", Role.INVESTIGATOR, False, False),
    ("readonly-a", "fr-tls", Role.READ_ONLY, False, False),
    ("pi-a", "fr-tls", Role.PI, False, False),
    ("investigator-b", "es-bcn-hsc", Role.INVESTIGATOR, False, False),
    ("pi-b", "es-bcn-hsc", Role.PI, False, False),
    ("coordinator", None, None, True, True),
)


class Command(BaseCommand):
    help = "Create demo centers, accounts (password 'registry-demo') and a synthetic cohort."

    def add_arguments(self, parser):
        parser.add_argument("--patients-per-center", type=int, default=15)

    def handle(self, *args, patients_per_center, **options):
        with transaction.atomic(), recompute_once():
            self.load(patients_per_center)

    def load(self, patients_per_center):
        centers = []
        for code, name, country in CENTERS:
            center, _ = Center.objects.get_or_create(code=code, defaults={"name": name, "country": country})
            for analyte, (lower, upper) in REFERENCE_RANGES.items():
                LabRange.objects.get_or_create(center=center, analyte=analyte, defaults={"lower": lower, "upper": upper})
            centers.append(center)

        User = get_user_model()
        for username, center_code, role, coordinator, staff in ACCOUNTS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_coordinator": coordinator, "is_staff": staff}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            if center_code:
                Membership.objects.get_or_create(user=user, center=Center.objects.get(code=center_code), defaults={"role": role})
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", password=DEMO_PASSWORD, is_coordinator=True)

        empty = [center for center in centers if not Patient.objects.filter(center=center).exists()]
        cohort = build_cohort(empty, patients_per_center)
        save_cohort(cohort)
        # Bulk inserts send no signals: compute every dashboard's snapshot once, after commit.
        transaction.on_commit(recompute_all_scopes)
        self.stdout.write(
            f"Demo registry ready: {len(CENTERS)} centers, {len(ACCOUNTS) + 1} accounts "
            f"(password '{DEMO_PASSWORD}'), {len(cohort.patients)} new patients, "
            f"{len(cohort.visits)} visits."
        )
