"""A clear page, not a server error, while the database cannot be reached.

When PostgreSQL is down (a restart, a failover, the network), every request fails with
``OperationalError`` or ``InterfaceError``: in a view (saving a form) or before it, when a
middleware loads the session or the user. Instead of a bare "Server Error (500)" the user gets
a 503 page saying that the database is unavailable and their entries could not be saved, with
the entries shown and kept in a form that posts them again to the same address. (Not "nothing
was saved": a save that committed just before the connection was lost cannot be told apart;
posting again is then refused as a duplicate by the form, e.g. one visit per patient per day.) Passwords and
one-time codes are never echoed back. The page reads nothing from the database.

Errors raised in a view come through ``process_exception``; errors raised in another
middleware have already been turned into a 500 response when they reach this one (Django
converts exceptions at each layer), so they are noted from ``got_request_exception`` and the
500 is replaced here. One more case: when the database goes away between the view and the
session's save, SessionMiddleware answers "Bad Request" (SessionInterrupted, a BadRequest:
logged on ``django.request``, not signalled); it is noted from that log record. This middleware must
therefore sit above SessionMiddleware.
"""
import logging
import sys

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.shortcuts import render

DATABASE_ERRORS = (OperationalError, InterfaceError)
#: Posted fields whose values are never echoed back (the user types them again).
SECRET_FIELDS = ("password", "token", "otp", "secret")
RETRY_AFTER_SECONDS = 30


def caused_by_database(error):
    """True when ``error`` is, or was raised while handling, a database connection error."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DATABASE_ERRORS):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _note_database_error(sender, request=None, **kwargs):
    if request is not None and caused_by_database(sys.exc_info()[1]):
        request._database_unavailable = True


class _SessionSaveFailure(logging.Handler):
    """Notes a request whose session could not be saved because the database went away."""

    def emit(self, record):
        request = getattr(record, "request", None)
        if request is not None and record.exc_info and caused_by_database(record.exc_info[1]):
            request._database_unavailable = True


#: Where Django logs the responses it makes from exceptions (BadRequest among them).
REQUEST_LOGGER = logging.getLogger("django.request")


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        got_request_exception.connect(_note_database_error, dispatch_uid="registry-database-unavailable")
        if not any(isinstance(handler, _SessionSaveFailure) for handler in REQUEST_LOGGER.handlers):
            REQUEST_LOGGER.addHandler(_SessionSaveFailure())

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "_database_unavailable", False) and response.status_code >= 400:
            return database_unavailable(request)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request)
        return None


def kept_entries(request):
    """(name, value) of every posted value worth keeping, in the order posted."""
    if request.method != "POST":
        return []
    return [
        (name, value)
        for name, values in request.POST.lists()
        if name != "csrfmiddlewaretoken" and not any(word in name.lower() for word in SECRET_FIELDS)
        for value in values
    ]


def database_unavailable(request):
    entries = kept_entries(request)
    response = render(request, "503.html", {
        "entries": entries,
        "shown": [(name, value) for name, value in entries if value != ""],
        "posted": request.method == "POST",
        "retry_after": RETRY_AFTER_SECONDS,
    }, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Patient data: never cached. Set here too since the page may bypass inner middleware.
    response["Cache-Control"] = "no-store"
    response.setdefault("X-Frame-Options", "DENY")
    return response
