"""The coordinator's upload page: upload, read the report, confirm; nobody else may."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry.clinical.models import Patient, Visit
from registry.datasets.views import SESSION_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def upload(client, path, **data):
    with open(path, "rb") as handle:
        file = SimpleUploadedFile(path.name, handle.read(), content_type="application/zip")
    return client.post(reverse("dataset-import"), {"bundle": file, **data})


def stored_uploads(media_root):
    folder = media_root / "imports"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_coordinator_uploads_reads_the_report_and_confirms(
    client_for, coordinator, bundle_files, write_bundle, zip_bundle, media_root, counts, valid_counts
):
    client = client_for(coordinator)
    assert client.get(reverse("dataset-import")).status_code == 200

    response = upload(client, zip_bundle(write_bundle(bundle_files)))

    assert response.status_code == 200
    body = response.content.decode()
    assert "The bundle is valid" in body
    assert 'id="import-summary"' in body
    assert Patient.objects.count() == 0  # only checked so far
    token = client.session[SESSION_KEY]["token"]
    assert stored_uploads(media_root) == [media_root / "imports" / f"{token}.zip"]

    response = client.post(reverse("dataset-import-confirm"), {"token": token})

    assert response.status_code == 200
    assert "Imported: 18 records created" in response.content.decode()
    assert counts() == valid_counts
    history = Visit.history.first()
    assert history.history_user == coordinator
    assert stored_uploads(media_root) == []
    assert SESSION_KEY not in client.session


def test_a_bundle_with_errors_shows_them_all_and_offers_no_confirmation(
    client_for, coordinator, bundle_files, write_bundle, zip_bundle, media_root
):
    bundle_files["visits.csv"][1]["easi"] = "80"
    bundle_files["patients.csv"][2]["sex"] = "x"
    client = client_for(coordinator)

    response = upload(client, zip_bundle(write_bundle(bundle_files)))

    body = response.content.decode()
    assert "The bundle has 2 errors" in body
    assert "EASI must be between 0 and 72." in body
    assert "<code>visits.csv</code></td><td>3</td><td><code>easi</code>" in body
    assert reverse("dataset-import-confirm") not in body
    assert stored_uploads(media_root) == []
    assert Patient.objects.count() == 0


def test_unknown_columns_can_be_ignored_from_the_form(
    client_for, coordinator, bundle_files, write_bundle, zip_bundle
):
    bundle_files["visits.csv"][0]["comment"] = "free text"
    path = zip_bundle(write_bundle(bundle_files))
    client = client_for(coordinator)
    assert "Unknown column." in upload(client, path).content.decode()
    response = upload(client, path, ignore_unknown_columns="on")
    assert "The bundle is valid" in response.content.decode()
    client.post(reverse("dataset-import-confirm"), {"token": client.session[SESSION_KEY]["token"]})
    assert Visit.objects.count() == 3


def test_only_a_zip_is_accepted(client_for, coordinator, tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("patient_code\n")
    response = upload(client_for(coordinator), path)
    assert "Upload a .zip file." in response.content.decode()


def test_a_confirmation_needs_the_token_of_this_session(
    client_for, coordinator, bundle_files, write_bundle, zip_bundle
):
    client = client_for(coordinator)
    upload(client, zip_bundle(write_bundle(bundle_files)))
    response = client.post(reverse("dataset-import-confirm"), {"token": "0" * 32})
    assert response.status_code == 302
    assert Patient.objects.count() == 0


def test_cancelling_discards_the_upload(
    client_for, coordinator, bundle_files, write_bundle, zip_bundle, media_root
):
    client = client_for(coordinator)
    upload(client, zip_bundle(write_bundle(bundle_files)))
    token = client.session[SESSION_KEY]["token"]
    client.post(reverse("dataset-import-cancel"), {"token": token})
    assert stored_uploads(media_root) == []
    assert client.post(reverse("dataset-import-confirm"), {"token": token}).status_code == 302
    assert Patient.objects.count() == 0


@pytest.mark.parametrize("persona", ["investigator_a", "pi_a", "readonly_a"])
def test_center_staff_are_forbidden(request, client_for, persona, bundle_files, write_bundle, zip_bundle):
    client = client_for(request.getfixturevalue(persona))
    assert client.get(reverse("dataset-import")).status_code == 403
    assert upload(client, zip_bundle(write_bundle(bundle_files))).status_code == 403
    assert client.post(reverse("dataset-import-confirm"), {"token": "x"}).status_code == 403
    assert Patient.objects.count() == 0


def test_a_logged_out_visitor_goes_to_the_login_page(client):
    for name in ("dataset-import", "dataset-import-confirm", "dataset-import-cancel"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
