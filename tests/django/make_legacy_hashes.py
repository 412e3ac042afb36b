"""Generate the legacy hashes older Django versions stored, with Django 4.2's own hashers
(removed in Django 5.0, still found in long-lived user tables): salted SHA-1, unsalted SHA-1,
unsalted MD5 (both of its spellings), and `crypt` (Unix DES crypt(3) through Python's `crypt`
module, so this needs a Python that still has it: 3.12 or older). Lines as in hashes.jsonl.

    /usr/bin/python3 -m venv /tmp/dj42 && /tmp/dj42/bin/pip install "django==4.2.*"
    /tmp/dj42/bin/python tests/django/make_legacy_hashes.py > tests/django/hashes_legacy.jsonl
"""
import json

import django
from django.conf import settings

settings.configure(USE_I18N=False)
django.setup()

from django.contrib.auth import hashers  # noqa: E402

PASSWORDS = ["correct horse battery staple", "pässwörd-ünïcode-密码"]
for password in PASSWORDS:
    for hasher, salt in [
        (hashers.SHA1PasswordHasher(), None),
        (hashers.UnsaltedSHA1PasswordHasher(), ""),
        (hashers.UnsaltedMD5PasswordHasher(), ""),
        (hashers.CryptPasswordHasher(), None),
    ]:
        encoded = hasher.encode(password, hasher.salt() if salt is None else salt)
        assert hasher.verify(password, encoded)
        print(json.dumps({"hasher": hasher.algorithm, "password": password,
                          "encoded": encoded, "default": False}, ensure_ascii=False))
    # Django also accepted unsalted MD5 written as `md5$$<hex>`.
    md5 = hashers.UnsaltedMD5PasswordHasher()
    encoded = "md5$$" + md5.encode(password, "")
    assert md5.verify(password, encoded)
    print(json.dumps({"hasher": "unsalted_md5", "password": password,
                      "encoded": encoded, "default": False}, ensure_ascii=False))
print(json.dumps({"django": django.get_version()}))
