"""The Django application behind nginx in tests/api/nginx.rs: a real Django, on the Django
SQLite database roster imported its users from, with docs/django/roster_middleware.py as
documented. `/whoami` answers who Django thinks is calling, as JSON.

    python strangler_app.py DJANGO_SQLITE_FILE PORT
"""
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "docs", "django"))

database, port = sys.argv[1], int(sys.argv[2])
settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="test only",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
    MIDDLEWARE=["roster_middleware.RosterUserMiddleware"],
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def whoami(request):
    user = request.user
    return JsonResponse(
        {
            "authenticated": user.is_authenticated,
            "id": user.pk,
            "username": user.get_username() if user.is_authenticated else None,
            "is_staff": user.is_staff,
        }
    )


urlpatterns = [path("whoami", whoami)]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", port, get_wsgi_application(), handler_class=Quiet)
print("ready", flush=True)
server.serve_forever()
