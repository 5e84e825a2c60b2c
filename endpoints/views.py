"""Live cohort dashboards: a center's, and the pooled one. They read snapshots, never compute.

Who sees what:

- A center's dashboard: that center's staff (any role) and coordinators, through
  ``Center.objects.for_user``; anyone else gets a 404, a logged-out visitor the login page.
- The pooled dashboard: coordinators, and center PIs when the study shares pooled results
  (``StudySettings.share_pooled_results``). A PI sees other centers' small cells as "<5" in
  the per-center breakdown and no other center's completeness.

Every request reads one snapshot row (and, with an enrolment-year filter, only that year's
rows out of it), so its cost does not grow with the cohort. Filters pick stored rows and
columns. A page whose scope has no snapshot yet asks for a recompute (queued, not run here)
and says so; the page's script polls :class:`StatusView` and swaps in the re-rendered body
(:class:`LiveView`) when a newer snapshot lands.
"""
import csv
import functools
import json
from hashlib import sha256
from urllib.parse import urlencode

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.cache import cache
from django.db.models.fields.json import KeyTransform
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.translation import get_language, gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import TemplateView

from endpoints import layout, services
from endpoints.compute.report import write_results_csv
from endpoints.compute.tally import ResultRow
from endpoints.models import POOLED, RecomputeState, Snapshot, StudySettings
from endpoints.storage import ResultRowsField
from registry.centers.models import Center, Membership
from registry.core.choices import label as code_label
from registry.core.scoping import Role

#: How often the page asks whether a newer snapshot exists (milliseconds).
POLL_MS = 2000
#: Tables a CSV download can name. The result tables come out in results.csv's format.
RESULT_TABLES = ("efficacy", "adverse_events", "escalation", "escalation_course", "baseline")
#: Snapshot fields every request reads (small); the rows, completeness and breakdown are read
#: only when the body is rendered, and other enrolment years' rows never.
HEADER_FIELDS = (
    "scope", "computed_at", "quantile_method", "patients", "episodes", "visits",
    "enrolment_years",
)
BODY_FIELDS = ("completeness", "center_breakdown")
#: Rendered bodies are cached by snapshot time, filters, language and viewer: the figures of
#: a snapshot never change, and when it is replaced the key changes with it.
BODY_CACHE_SECONDS = 10 * 60
QUANTILE_LABELS = dict(StudySettings.QUANTILE_METHODS)


def keeps_session_idle(view):
    """Polling must not extend the session: the registry logs a shared clinic workstation
    out after inactivity (``SESSION_SAVE_EVERY_REQUEST`` saves the session, and so renews its
    expiry, on every request), and a dashboard left open polls every two seconds.

    The session is read as usual (authentication); once the response is made the request's
    session is detached, so ``SessionMiddleware`` neither saves nor renews it.
    """
    @functools.wraps(view)
    def wrapped(self, request, *args, **kwargs):
        response = view(self, request, *args, **kwargs)
        if hasattr(request, "session"):
            del request.session
        return response

    return wrapped


# --- Scope and access -----------------------------------------------------------------------

class Scope:
    """What a dashboard shows: one center (``center``) or the pool, and how to show it."""

    def __init__(self, key, *, center=None, own_centers=None, is_coordinator=False):
        self.key = key
        self.center = center
        #: center codes never suppressed in the pooled breakdown (None: nothing suppressed)
        self.own_centers = own_centers
        self.is_coordinator = is_coordinator

    @property
    def pooled(self):
        return self.key == POOLED

    @property
    def title(self):
        return _("All centers (pooled)") if self.pooled else self.center.name

    @property
    def slug(self):
        return "pooled" if self.pooled else self.key

    @property
    def show_completeness(self):
        """Per-center completeness of the pool is for coordinators; a PI sees their own
        center's on the center dashboard."""
        return not self.pooled or self.own_centers is None

    def url(self, name):
        if self.pooled:
            return reverse(f"pooled-{name}")
        return reverse(f"center-{name}", args=[self.key])


def may_see_pooled(user):
    """Coordinators; center PIs when the study shares pooled results."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_coordinator:
        return True
    return (
        StudySettings.current().share_pooled_results
        and Membership.objects.filter(user=user, role=Role.PI).exists()
    )


class ScopeMixin(LoginRequiredMixin):
    """``self.scope`` from the URL: a center through the scoped queryset (404 outside the
    user's centers) or the pool (404 unless :func:`may_see_pooled`)."""

    pooled = False

    @cached_property
    def scope(self):
        user = self.request.user
        if not self.pooled:
            center = get_object_or_404(Center.objects.for_user(user), code=self.kwargs["code"])
            return Scope(center.code, center=center, is_coordinator=user.is_coordinator)
        if not may_see_pooled(user):
            raise Http404
        if user.is_coordinator:
            return Scope(POOLED, is_coordinator=True)
        own = set(Center.objects.for_user(user).values_list("code", flat=True))
        return Scope(POOLED, own_centers=own)


# --- Reading a snapshot ---------------------------------------------------------------------

class Filters:
    """The page's filters, read from the query string. They pick stored rows (enrolment
    year) and columns (drug, start dose); nothing is computed."""

    def __init__(self, params):
        self.drug = params.get("drug", "").strip()
        self.group = params.get("dose", "").strip()
        self.year = params.get("year", "").strip()

    @property
    def active(self):
        return bool(self.drug or self.group or self.year)

    def query(self):
        pairs = [("drug", self.drug), ("dose", self.group), ("year", self.year)]
        return urlencode([(key, value) for key, value in pairs if value])

    def cache_key(self):
        return sha256(self.query().encode()).hexdigest()[:16]


class MemberOf(KeyTransform):
    """A member of a JSON object by name, also when the name is all digits: Django's
    ``KeyTransform`` takes "2024" for an array index on SQLite and PostgreSQL."""

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return f"({lhs} -> %s)", (*params, self.key_name)

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return f"JSON_EXTRACT({lhs}, %s)", (*params, f"$.{json.dumps(self.key_name)}")


def read_header(scope_key):
    """The scope's snapshot without its rows (one small query), or None."""
    return Snapshot.objects.filter(scope=scope_key).only(*HEADER_FIELDS).first()


def read_snapshot(scope_key, year=""):
    """The scope's snapshot with ``rows`` set to the rows to show (one enrolment year's when
    ``year`` is given: None when the snapshot has no such year), or None. One query; other
    years' rows stay in the database."""
    snapshots = Snapshot.objects.filter(scope=scope_key).only(*HEADER_FIELDS, *BODY_FIELDS)
    if year:
        snapshots = snapshots.annotate(
            year_rows=MemberOf(year, "rows_by_enrolment_year", output_field=ResultRowsField())
        )
    else:
        snapshots = snapshots.only(*HEADER_FIELDS, *BODY_FIELDS, "rows")
    snapshot = snapshots.first()
    if snapshot is not None and year:
        snapshot.rows = snapshot.year_rows if isinstance(snapshot.year_rows, list) else None
    return snapshot


def rendered_body(request, scope, filters):
    """(snapshot header or None, the dashboard body's HTML) for the page and the live view.

    The HTML is cached under the snapshot's time: a request for figures already rendered
    costs one small query; a newer snapshot has another key."""
    header = read_header(scope.key)
    if header is None:
        return None, render_to_string("endpoints/_body.html", {"snapshot": None}, request=request)
    viewer = "all" if scope.own_centers is None else ",".join(sorted(scope.own_centers))
    key = ":".join((
        "dashboard-body", scope.key, header.computed_at.isoformat(), filters.cache_key(),
        get_language() or "", viewer,
    ))
    html = cache.get(key)
    if html is None:
        snapshot = read_snapshot(scope.key, filters.year)
        html = render_to_string(
            "endpoints/_body.html", body_context(scope, snapshot, filters), request=request
        )
        cache.set(key, html, BODY_CACHE_SECONDS)
    return header, html


def pending_state(scope_key):
    return RecomputeState.objects.filter(scope=scope_key).values(
        "pending_changes", "queued_at", "last_error"
    ).first() or {"pending_changes": 0, "queued_at": None, "last_error": ""}


#: Seconds shown: a PI watching the page sees each new computation land.
COMPUTED_AT_FORMAT = "Y-m-d H:i:s"


def computed_label(computed_at):
    if computed_at is None:
        return ""
    return date_format(timezone.localtime(computed_at), COMPUTED_AT_FORMAT)


def pending_label(count):
    if not count:
        return gettext("No changes pending")
    return ngettext("%(count)d change pending", "%(count)d changes pending", count) % {
        "count": count
    }


def status_payload(scope_key):
    computed_at = (
        Snapshot.objects.filter(scope=scope_key).values_list("computed_at", flat=True).first()
    )
    state = pending_state(scope_key)
    return {
        "computed_at": computed_at.isoformat() if computed_at else None,
        "computed_label": computed_label(computed_at),
        "pending_changes": state["pending_changes"],
        "pending_label": pending_label(state["pending_changes"]),
        "failing": bool(state["last_error"]),
    }


def body_context(scope, snapshot, filters):
    """Everything the dashboard body shows, from one snapshot (or None: being computed)."""
    context = {"scope": scope, "snapshot": snapshot, "filters": filters}
    if snapshot is None:
        return context
    years = snapshot.enrolment_years or []
    year_known = not filters.year or any(entry["year"] == filters.year for entry in years)
    rows = layout.Rows(snapshot.rows or [])
    start_groups = rows.start_dose_groups()
    if filters.group and filters.group not in start_groups:
        start_groups.append(filters.group)
    drugs = list(dict.fromkeys(layout.group_drug(group) for group in start_groups))
    if filters.drug and filters.drug not in drugs:
        drugs.append(filters.drug)

    def columns(table):
        return layout.select_groups(rows.groups(table), drug=filters.drug, group=filters.group)

    completeness_entries = snapshot.completeness or []
    context.update({
        "year_known": year_known,
        "years": years,
        "drug_options": [(drug, code_label(drug)) for drug in drugs],
        "group_options": [(group, layout.group_label(group)) for group in start_groups],
        "efficacy_tables": layout.efficacy_tables(rows, columns("efficacy")),
        "adverse_events": layout.adverse_events_table(rows, columns("adverse_events")),
        "escalation": layout.escalation_table(rows, columns("escalation")),
        "course": layout.course_table(rows),
        "charts": layout.course_charts(rows),
        "baseline": layout.baseline_table(rows, columns("baseline")),
        "headline": headline(rows, snapshot, filters),
        "quantile_label": QUANTILE_LABELS.get(snapshot.quantile_method, snapshot.quantile_method),
        "csv_query": filters.query(),
        "csv_url": scope.url("dashboard-csv"),
    })
    if scope.show_completeness and completeness_entries:
        context["completeness"] = layout.completeness_table(
            completeness_entries, center_names=center_names(scope)
        )
        if not scope.pooled:
            context["chase"] = layout.chase_list(completeness_entries[0])
    if scope.pooled:
        context["breakdown"] = layout.breakdown_table(
            snapshot.center_breakdown or [], own_centers=scope.own_centers,
            center_names=center_names(scope),
        )
    return context


def center_names(scope):
    """Center code -> "code — name" for the pooled tables (not patient data; one query)."""
    if not scope.pooled:
        return {scope.key: scope.center.name}
    if not hasattr(scope, "_names"):
        scope._names = dict(Center.objects.values_list("code", "name"))
    return scope._names


def headline(rows, snapshot, filters):
    """The figures above the tables: patients, episodes and visits of the scope (of the
    chosen enrolment year, when one is)."""
    if filters.year:
        entry = next((e for e in snapshot.enrolment_years or [] if e["year"] == filters.year), None)
        if entry is None:
            return {"patients": 0, "episodes": 0, "visits": 0}
        return {key: entry[key] for key in ("patients", "episodes", "visits")}
    return {"patients": snapshot.patients, "episodes": snapshot.episodes, "visits": snapshot.visits}


# --- Views ----------------------------------------------------------------------------------

class IndexView(LoginRequiredMixin, TemplateView):
    """The dashboards a user may open; with exactly one, straight to it."""

    template_name = "endpoints/index.html"

    def get(self, request, *args, **kwargs):
        centers = list(Center.objects.for_user(request.user))
        pooled = may_see_pooled(request.user)
        if len(centers) == 1 and not pooled:
            return redirect("center-dashboard", code=centers[0].code)
        if not centers and pooled:
            return redirect("pooled-dashboard")
        return self.render_to_response(self.get_context_data(centers=centers, pooled=pooled))


class DashboardView(ScopeMixin, TemplateView):
    template_name = "endpoints/dashboard.html"

    def get_context_data(self, **kwargs):
        scope = self.scope
        filters = Filters(self.request.GET)
        snapshot, body = rendered_body(self.request, scope, filters)
        if snapshot is None and services.request_snapshot(scope.key):
            # Queued for the worker; without a broker (the embedded set-up) it has run by now.
            snapshot, body = rendered_body(self.request, scope, filters)
        state = pending_state(scope.key)
        config = {
            "computedLabel": computed_label(snapshot.computed_at if snapshot else None),
            "statusUrl": scope.url("dashboard-status"),
            "liveUrl": scope.url("dashboard-live"),
            "computedAt": snapshot.computed_at.isoformat() if snapshot else None,
            "pollMs": POLL_MS,
        }
        return super().get_context_data(
            scope=scope, snapshot=snapshot, body=body, state=state, config=config,
            pending_label=pending_label(state["pending_changes"]), **kwargs
        )


class StatusView(ScopeMixin, View):
    """When the figures were computed and how many changes wait: what the page polls."""

    @keeps_session_idle
    def get(self, request, *args, **kwargs):
        response = JsonResponse(status_payload(self.scope.key))
        response["Cache-Control"] = "no-store"
        return response


class LiveView(ScopeMixin, View):
    """The re-rendered dashboard body for the page's filters, and the snapshot time."""

    @keeps_session_idle
    def get(self, request, *args, **kwargs):
        snapshot, body = rendered_body(request, self.scope, Filters(request.GET))
        response = JsonResponse({
            "computed_at": snapshot.computed_at.isoformat() if snapshot else None,
            "computed_label": computed_label(snapshot.computed_at if snapshot else None),
            "html": body,
        })
        response["Cache-Control"] = "no-store"
        return response


class CsvView(ScopeMixin, View):
    """One table as CSV, from the snapshot. Result tables in results.csv's long format
    (endpoints.md), restricted to the page's filters; completeness and the breakdown as shown
    (suppressed cells stay suppressed)."""

    def get(self, request, *args, **kwargs):
        scope = self.scope
        filters = Filters(request.GET)
        table = request.GET.get("table", "")
        snapshot = read_snapshot(scope.key, filters.year)
        if snapshot is None or snapshot.rows is None:
            raise Http404
        stamp = timezone.localtime(snapshot.computed_at).strftime("%Y%m%d-%H%M")
        suffix = f"-{filters.year}" if filters.year else ""
        name = f"{scope.slug}-{table or 'results'}{suffix}-{stamp}.csv"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        if table in ("", *RESULT_TABLES):
            write_results_csv(result_rows(snapshot.rows, table, filters), response)
        elif table == "completeness" and scope.show_completeness:
            write_completeness_csv(snapshot.completeness or [], response)
        elif table == "breakdown" and scope.pooled:
            write_breakdown_csv(snapshot.center_breakdown or [], scope, response)
        else:
            raise Http404
        return response


def result_rows(rows, table, filters):
    """Snapshot rows of one table (every table when empty) in the filtered columns."""
    by_table = {}
    for row in rows:
        if not table or row["table"] == table:
            by_table.setdefault(row["table"], []).append(row)
    out = []
    for name, table_rows in by_table.items():
        groups = list(dict.fromkeys(row["group"] for row in table_rows))
        keep = set(layout.select_groups(groups, drug=filters.drug, group=filters.group))
        out += [ResultRow(**row) for row in table_rows if row["group"] in keep]
    return out


def write_completeness_csv(entries, file):
    from endpoints.compute.vocabulary import SCORE_CODES

    writer = csv.writer(file, lineterminator="\n")
    writer.writerow([
        "center", "patients", "episodes", "visits",
        *(f"visits_with_{score}" for score in SCORE_CODES),
        "episodes_without_baseline_visit", "episodes_past_m3", "episodes_without_m3_visit",
        "patients_without_episode",
    ])
    for entry in entries:
        writer.writerow([
            "all" if entry["center"] == "*" else entry["center"], entry["patients"],
            entry["episodes"], entry["visits"],
            *(entry["visits_with"].get(score, 0) for score in SCORE_CODES),
            len(entry["episodes_without_baseline"]), entry["m3_due"],
            len(entry["episodes_without_m3"]), len(entry["patients_without_episode"]),
        ])


def write_breakdown_csv(entries, scope, file):
    """n, count and percent of each headline figure per center; suppressed cells read "<5"
    here too, so the download never tells more than the page."""
    writer = csv.writer(file, lineterminator="\n")
    keys = [key for key, _title in layout.BREAKDOWN_COLUMNS]
    writer.writerow([
        "center", "patients", "episodes",
        *(f"{key}_{part}" for key in keys for part in ("n", "count", "percent")),
    ])
    for entry in layout.breakdown_figures(entries, own_centers=scope.own_centers):
        writer.writerow([
            entry["center"], entry["patients"], entry["episodes"],
            *(entry[key][part] for key in keys for part in ("n", "count", "percent")),
        ])
