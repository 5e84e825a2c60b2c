"""Shared fixtures of the bad-input corpora."""
import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The personas are created for every case: PBKDF2 would cost most of the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

