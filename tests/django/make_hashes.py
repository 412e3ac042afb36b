"""Generate Django password hashes for roster's import tests, with Django's own hashers.

Every line of hashes.jsonl is {"hasher", "password", "encoded", "default"}: `encoded` is what
Django's `make_password(password, hasher=...)` stored. `default` is true for hashes made
with the hasher's shipped parameters (slow on purpose: PBKDF2 at 1,000,000 iterations, Argon2
at 100 MiB with 8 lanes, bcrypt at cost 12); the others use cheaper parameters so the test
suite stays fast, through subclasses that change only the cost, as a Django project can.

Run with the Django version named below and argon2-cffi + bcrypt installed:
    python -m venv /tmp/djv && /tmp/djv/bin/pip install "django==5.2.*" argon2-cffi bcrypt
    /tmp/djv/bin/python tests/django/make_hashes.py > tests/django/hashes.jsonl
"""
import json

import django
from django.conf import settings

settings.configure(USE_I18N=False)
django.setup()

from django.contrib.auth import hashers  # noqa: E402


import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hashes_cheap import (  # noqa: E402
    CheapArgon2,
    CheapBCrypt,
    CheapBCryptSHA256,
    CheapPBKDF2,
    CheapPBKDF2SHA1,
    CheapScrypt,
)

PASSWORDS = ["correct horse battery staple", "pässwörd-ünïcode-密码", "x" * 72]

cheap = [
    CheapPBKDF2(),
    CheapPBKDF2SHA1(),
    CheapArgon2(),
    CheapBCryptSHA256(),
    CheapBCrypt(),
    CheapScrypt(),
    hashers.MD5PasswordHasher(),
]
shipped = [
    hashers.PBKDF2PasswordHasher(),
    hashers.Argon2PasswordHasher(),
    hashers.BCryptSHA256PasswordHasher(),
    hashers.ScryptPasswordHasher(),
]

for hasher in cheap:
    for password in PASSWORDS:
        encoded = hasher.encode(password, hasher.salt())
        assert hasher.verify(password, encoded)
        print(json.dumps({"hasher": hasher.algorithm, "password": password,
                          "encoded": encoded, "default": False}, ensure_ascii=False))
for hasher in shipped:
    password = PASSWORDS[0]
    encoded = hasher.encode(password, hasher.salt())
    assert hasher.verify(password, encoded)
    print(json.dumps({"hasher": hasher.algorithm, "password": password,
                      "encoded": encoded, "default": True}, ensure_ascii=False))
print(json.dumps({"django": django.get_version()}))
