"""Build a Django database with allauth's MFA authenticators, for roster's device import tests.

Writes tests/django/allauth.sqlite3 (a real Django SQLite database after `migrate`, with
allauth.mfa) and tests/django/allauth_devices.json (each user's authenticators as allauth made
them: the TOTP secret, and the recovery codes allauth itself says are unused and used, for the
tests to sign in with). Users' passwords are "correct horse battery staple" (a cheap PBKDF2,
see make_hashes_cheap.py).

    python3 -m venv /tmp/djv && /tmp/djv/bin/pip install "django>=5,<6" "django-allauth[mfa]>=65,<66"
    /tmp/djv/bin/python tests/django/make_allauth_db.py
"""
import json
import os
import sys

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
DB = os.path.join(HERE, "allauth.sqlite3")
if os.path.exists(DB):
    os.remove(DB)

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "allauth",
        "allauth.account",
        "allauth.mfa",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    MIDDLEWARE=["allauth.account.middleware.AccountMiddleware"],
    USE_TZ=True,
    USE_I18N=False,
    PASSWORD_HASHERS=["make_hashes_cheap.CheapPBKDF2"],
    # The default adapter: allauth stores the secret and the seed as they are.
    MFA_SUPPORTED_TYPES=["totp", "recovery_codes", "webauthn"],
)
sys.path.insert(0, HERE)
django.setup()

from allauth.mfa.models import Authenticator  # noqa: E402
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes  # noqa: E402
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

out = []


def user(name):
    return User.objects.create(
        username=name,
        email=f"{name}@example.com",
        password=make_password("correct horse battery staple"),
    )


def totp(u):
    secret = generate_totp_secret()
    TOTP.activate(u, secret)
    return secret


# A phone and recovery codes as allauth makes them (a seed), one code used in Django.
erin = user("aa_erin")
secret = totp(erin)
codes = RecoveryCodes.activate(erin)
every = codes.generate_codes()
assert codes.validate_code(every[3])
out.append({"username": "aa_erin", "totp": secret, "unused": codes.get_unused_codes(),
            "used": [every[3]]})
# Recovery codes carried into allauth from another system ("migrated_codes"), no phone.
frank = user("aa_frank")
Authenticator.objects.create(user=frank, type="recovery_codes",
                             data={"migrated_codes": ["k3j9-q2xd", "77aa-8bbc"]})
out.append({"username": "aa_frank", "totp": None, "unused": ["k3j9-q2xd", "77aa-8bbc"],
            "used": []})
# A security key roster cannot represent, beside a phone: the phone comes, the key is reported.
gina = user("aa_gina")
secret = totp(gina)
Authenticator.objects.create(user=gina, type="webauthn",
                             data={"name": "yubikey", "credential": {"id": "x"}})
out.append({"username": "aa_gina", "totp": secret, "unused": [], "used": []})
# A secret a project's own adapter encrypted (allauth's encrypt hook): roster cannot read it.
hank = user("aa_hank")
Authenticator.objects.create(user=hank, type="totp",
                             data={"secret": "gAAAAABm-encrypted-by-the-project's-adapter=="})
out.append({"username": "aa_hank", "totp": None, "unused": [], "used": []})

with open(os.path.join(HERE, "allauth_devices.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
