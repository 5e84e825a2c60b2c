"""Result rows in PostgreSQL ``json`` columns instead of ``jsonb`` (endpoints.storage)."""
from django.db import migrations

COLUMNS = ("rows", "rows_by_enrolment_year")


def column_type(new_type):
    def alter(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return  # other databases keep Django's JSON column
        for column in COLUMNS:
            schema_editor.execute(
                f'ALTER TABLE endpoints_snapshot ALTER COLUMN "{column}" TYPE {new_type} '
                f'USING "{column}"::{new_type}'
            )
    return alter


class Migration(migrations.Migration):

    dependencies = [
        ("endpoints", "0003_compact_result_rows"),
    ]

    operations = [
        migrations.RunPython(column_type("json"), column_type("jsonb")),
    ]
