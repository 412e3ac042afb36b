"""Sign Django requests in as the user roster authenticated (behind nginx `auth_request`).

Put roster in front of the Django application with docs/nginx/auth-request.conf: nginx asks
roster's /auth/check on every request and passes `X-Roster-Legacy-Id` (Django's
`auth_user.id`, for users `roster import-django` brought over) to the application, having
replaced anything the client sent under that name. This middleware logs the request in as that
`auth_user`; `request.user` is anonymous otherwise. Use it in place of
`AuthenticationMiddleware` (and of Django's login views: users sign in to roster).

    MIDDLEWARE = [..., "roster_middleware.RosterUserMiddleware", ...]

Only deploy it where every request comes through that nginx: the header is trusted.
"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser


class RosterUserMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        legacy_id = request.META.get("HTTP_X_ROSTER_LEGACY_ID", "")
        user = None
        if legacy_id.isascii() and legacy_id.isdigit():
            user = get_user_model().objects.filter(pk=int(legacy_id), is_active=True).first()
        request.user = user or AnonymousUser()
        return self.get_response(request)
