"""Django's hashers with cheaper costs (only the cost differs), for fast test fixtures."""
from django.contrib.auth import hashers


class CheapPBKDF2(hashers.PBKDF2PasswordHasher):
    iterations = 1000


class CheapPBKDF2SHA1(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class CheapArgon2(hashers.Argon2PasswordHasher):
    memory_cost = 256
    time_cost = 1
    parallelism = 2


class CheapBCryptSHA256(hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class CheapBCrypt(hashers.BCryptPasswordHasher):
    rounds = 4


class CheapScrypt(hashers.ScryptPasswordHasher):
    work_factor = 2**10
    parallelism = 2
