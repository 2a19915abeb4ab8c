from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from pandamon.roles import ALL_ROLES


class Command(BaseCommand):
    help = "Create (or reuse) a user with the given roles and print an API token for it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", action="append", default=[], choices=ALL_ROLES, help="Grant a role (repeatable).")
        parser.add_argument("--superuser", action="store_true", help="Make the user an admin (Django superuser).")
        parser.add_argument("--password", help="Set a password for portal/admin login.")

    def handle(self, *args, username, role, superuser, password, **options):
        user, _ = get_user_model().objects.get_or_create(username=username)
        if superuser:
            user.is_superuser = user.is_staff = True
        if password:
            user.set_password(password)
        user.save()
        for name in role:
            group = Group.objects.filter(name=name).first()
            if group is None:
                raise CommandError(f"role group {name} is missing; run migrate")
            user.groups.add(group)
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
