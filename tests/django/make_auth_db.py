"""Build a small Django user table for roster's import tests, with Django itself.

Writes tests/django/auth_user.sqlite3 (a real Django SQLite database after `migrate`) and
tests/django/auth_user.json (`manage.py dumpdata auth.user` of the same rows). The users cover
what an import meets: every hasher (cheap parameters; see make_hashes.py), names that differ
only by case, blank and duplicate emails, a reserved and a mixed-script name Django allowed,
an inactive user, an unusable password, staff and superuser flags, a hash that asks for more
memory than roster verifies. Passwords are recorded in tests/django/auth_users.jsonl.

    /tmp/djv/bin/python tests/django/make_auth_db.py
"""
import io
import json
import os
import sys

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
DB = os.path.join(HERE, "auth_user.sqlite3")
if os.path.exists(DB):
    os.remove(DB)

settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    USE_TZ=True,
    USE_I18N=False,
    PASSWORD_HASHERS=[
        "make_hashes_cheap.CheapPBKDF2",
        "make_hashes_cheap.CheapPBKDF2SHA1",
        "make_hashes_cheap.CheapArgon2",
        "make_hashes_cheap.CheapBCryptSHA256",
        "make_hashes_cheap.CheapBCrypt",
        "make_hashes_cheap.CheapScrypt",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ],
)
sys.path.insert(0, HERE)
django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

PASSWORD = "correct horse battery staple"
HASHERS = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5"]
rows = []


def add(username, email, password=PASSWORD, hasher="pbkdf2_sha256", **flags):
    encoded = make_password(password, hasher=hasher) if password is not None else make_password(None)
    user = User.objects.create(username=username, email=email, password=encoded, **flags)
    rows.append({"legacy_id": user.pk, "username": username, "password": password, "hasher": hasher})
    return user


for h in HASHERS:
    add(f"user_{h}", f"{h}@example.com", hasher=h)
add("Alice", "alice@example.com")
add("alice", "alice2@example.com")            # same name as Alice ignoring case: a conflict
add("blank1", "")                             # blank email: imported without one (warning)
add("blank2", "")
add("dup1", "shared@example.com")
add("dup2", "SHARED@example.com")             # same email ignoring case: a conflict
add("admin", "admin@example.com", is_staff=True, is_superuser=True)  # reserved at sign-up, fine here
add("pаypal", "mixed@example.com")             # Cyrillic а: mixed-script, allowed by Django
add("sleeper", "sleeper@example.com", is_active=False)
add("nopass", "nopass@example.com", password=None)  # unusable password
big = add("bigargon", "big@example.com", hasher="argon2")
# Same string with 4 GiB of memory asked: refused at import.
big.password = big.password.replace("m=256,", "m=4194304,")
big.save()

out = io.StringIO()
call_command("dumpdata", "auth.user", indent=1, stdout=out)
with open(os.path.join(HERE, "auth_user.json"), "w") as f:
    f.write(out.getvalue())
with open(os.path.join(HERE, "auth_users.jsonl"), "w") as f:
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"{len(rows)} users written with Django {django.get_version()}")
