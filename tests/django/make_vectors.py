"""Generate reference vectors for Django's UserAttributeSimilarityValidator.

Runs the real validator from the installed Django. The "user" is a plain
object carrying only `username` and `email`; the validator reads these with
getattr. It also needs `user._meta.get_field(name).verbose_name` to build
the error message, and a bare object has no `_meta` (that would raise
AttributeError, not FieldDoesNotExist), so the object borrows the auth User
model's `_meta`. That gives the real labels "username" / "email address".
No database is touched.
"""
import json
import sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    USE_I18N=False,
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.contrib.auth.password_validation import (  # noqa: E402
    UserAttributeSimilarityValidator,
)
from django.core.exceptions import ValidationError  # noqa: E402


class FakeUser:
    _meta = User._meta  # used only for verbose_name lookup on refusal

    def __init__(self, username, email):
        self.username = username
        self.email = email


# (username, email, password, max_similarity)
CASES = [
    # --- Django's own tests (tests/auth_tests/test_validators.py) ---
    ("testclient", "testclient@example.com", "testclient", 0.7),
    ("testclient", "testclient@example.com", "example.com", 0.7),
    # first_name="Test" with max_similarity=0.3, moved to username:
    ("Test", "", "testclient", 0.3),
    # max_similarity=1 with identical password (first_name case, moved to username):
    ("Test", "", "Test", 1.0),
    # default max_similarity passes for "testclient" vs "Test":
    ("Test", "", "testclient", 0.7),
    # test_validate_property: username "foobar"
    ("foobar", "", "foobar", 0.7),
    # extra checks with the same user
    ("testclient", "testclient@example.com", "testclient", 1.0),
    ("testclient", "testclient@example.com", "a-safe-password", 0.7),
    # --- alice ---
    ("alice", "alice@example.com", "ecila123", 0.7),
    ("alice", "alice@example.com", "alice123", 0.7),
    ("alice", "alice@example.com", "alice-loves-ocean-tides", 0.7),
    ("alice", "alice@example.com", "Alice", 0.7),
    ("alice", "alice@example.com", "ALICE2024", 0.7),
    ("alice", "alice@example.com", "correct horse battery staple", 0.7),
    ("alice", "alice@example.com", "alice", 1.0),
    ("alice", "alice@example.com", "alice1", 1.0),
    # --- underscores / punctuation ---
    ("alice_smith", "alice@example.com", "smith_alice1", 0.7),
    ("bob.jones", "bob@example.com", "jonesbob", 0.7),
    ("-alice-", "", "xalicex99", 0.7),
    # --- unicode ---
    ("José", "jose@example.com", "josé123", 0.7),
    ("Straße", "strasse@example.com", "strasse99", 0.7),
    ("Straße", "", "strasse99", 0.7),
    # --- long password vs short username (exceeds_maximum_length_ratio) ---
    ("ab", "", "ab" + "x" * 30, 0.7),
    ("ab", "", "abababababababababababab", 0.7),
    ("ab", "", "abababababababababababab", 0.1),
    ("ab", "", "abab", 0.7),
    # --- short / empty parts ---
    ("zed", "x@y.co", "xyco1234", 0.7),
    ("zed", "alice@example.com.", "qwertyuiop", 0.7),
    ("", "", "anything", 0.7),
    # --- thresholds ---
    ("abcdefghij", "", "abcdefg", 0.7),   # quick_ratio = 14/17 ~ 0.82
    ("abcdefghij", "", "abcdef", 0.75),   # quick_ratio = 12/16 = 0.75 (>= is refused)
]


def run(username, email, password, max_similarity):
    v = UserAttributeSimilarityValidator(max_similarity=max_similarity)
    try:
        v.validate(password, user=FakeUser(username, email))
    except ValidationError as e:
        err = e.error_list[0]
        assert err.code == "password_too_similar"
        return True, str(err.params["verbose_name"])
    return False, None


def main():
    for username, email, password, ms in CASES:
        refused, attribute = run(username, email, password, ms)
        print(json.dumps({
            "username": username,
            "email": email,
            "password": password,
            "max_similarity": ms,
            "refused": refused,
            "attribute": attribute,
        }, ensure_ascii=False))
    # Side checks, on stderr so the JSONL stays clean.
    print("django", django.get_version(), file=sys.stderr)
    try:
        UserAttributeSimilarityValidator(max_similarity=0.09)
        print("max_similarity=0.09: accepted (unexpected)", file=sys.stderr)
    except ValueError as e:
        print("max_similarity=0.09: ValueError:", e, file=sys.stderr)
    UserAttributeSimilarityValidator(max_similarity=0.1)
    print("max_similarity=0.1: accepted", file=sys.stderr)
    print("user=None -> validate returns",
          UserAttributeSimilarityValidator().validate("testclient", user=None),
          file=sys.stderr)


if __name__ == "__main__":
    main()
