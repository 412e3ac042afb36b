"""Build a Django database with django-otp devices, for roster's device import tests.

Writes tests/django/otp.sqlite3 (a real Django SQLite database after `migrate`, with
django-otp's TOTP and static plugins) and tests/django/otp_devices.json (each user's devices as
django-otp made them: keys, parameters and static tokens, for the tests to make codes with).
Users' passwords are "correct horse battery staple" (a cheap PBKDF2, see make_hashes_cheap.py).

    python3 -m venv /tmp/djv && /tmp/djv/bin/pip install "django>=5,<6" "django-otp>=1.5,<2"
    /tmp/djv/bin/python tests/django/make_otp_db.py
"""
import json
import os
import sys

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
DB = os.path.join(HERE, "otp.sqlite3")
if os.path.exists(DB):
    os.remove(DB)

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django_otp",
        "django_otp.plugins.otp_totp",
        "django_otp.plugins.otp_static",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    USE_TZ=True,
    USE_I18N=False,
    PASSWORD_HASHERS=["make_hashes_cheap.CheapPBKDF2"],
)
sys.path.insert(0, HERE)
django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken  # noqa: E402
from django_otp.plugins.otp_totp.models import TOTPDevice  # noqa: E402

call_command("migrate", verbosity=0)

out = []


def user(name):
    return User.objects.create(
        username=name,
        email=f"{name}@example.com",
        password=make_password("correct horse battery staple"),
    )


def totp(u, **kw):
    d = TOTPDevice.objects.create(user=u, name="phone", **kw)
    return {"key": d.key, "step": d.step, "t0": d.t0, "digits": d.digits, "drift": d.drift,
            "confirmed": d.confirmed}


def static(u, n):
    d = StaticDevice.objects.create(user=u, name="backup")
    tokens = []
    for _ in range(n):
        t = StaticToken.random_token()
        StaticToken.objects.create(device=d, token=t)
        tokens.append(t)
    return tokens


# A phone and backup codes, as django-otp's defaults make them.
alice = user("otp_alice")
out.append({"username": "otp_alice", "totp": [totp(alice)], "static": static(alice, 3)})
# A device with other parameters (8 digits, 60 s, drift 1), and an unconfirmed one beside it.
bob = user("otp_bob")
out.append({"username": "otp_bob",
            "totp": [totp(bob, digits=8, step=60, drift=1), totp(bob, confirmed=False)],
            "static": []})
# Two confirmed phones: roster keeps one device per user; the other is reported.
carol = user("otp_carol")
out.append({"username": "otp_carol", "totp": [totp(carol), totp(carol)], "static": []})
# No device at all.
user("otp_dave")
out.append({"username": "otp_dave", "totp": [], "static": []})

with open(os.path.join(HERE, "otp_devices.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
