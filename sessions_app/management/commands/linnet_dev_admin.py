"""`python manage.py linnet_dev_admin`: make sure a local admin login exists and say what it is.

Only with DEBUG on: the password is generated once and kept in `.dev-admin-password`.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

PASSWORD_FILE = settings.BASE_DIR / ".dev-admin-password"
USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the local development admin (DEBUG only) and print how to log in."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url: str, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("linnet_dev_admin only runs with DEBUG on; use createsuperuser in production.")
        if not PASSWORD_FILE.exists():
            PASSWORD_FILE.write_text(secrets.token_urlsafe(12) + "\n")
            PASSWORD_FILE.chmod(0o600)
        password = PASSWORD_FILE.read_text().strip()
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first()
        if user is None:
            User.objects.create_superuser(USERNAME, "", password)
        elif not user.check_password(password):
            self.stdout.write(f"(user {USERNAME!r} exists with another password; keeping it)")
        self.stdout.write(
            f"\nLinnet: {url}\n"
            f"Admin:  {url}admin/  user {USERNAME!r}, password {password!r} (kept in {PASSWORD_FILE.name})\n"
        )
