"""Log in with a username or a phone number (手机号登录).

Every attempt runs the password hasher exactly once, whether or not the username or phone
number belongs to a member: an unknown name hashes the password against nothing (like
Django's ``ModelBackend``), so the answer's timing does not tell a stranger who is a member.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.db.models import Case, Q, Value, When

from .models import Member


def find_login_member(login: str) -> Member | None:
    """The member a login name means: the one with that username, else (for a number) the
    active member with that phone number. One query."""
    match = Q(username=login)
    if login.isdigit():
        match |= Q(phone=login, is_active=True)
    username_first = Case(When(username=login, then=Value(0)), default=Value(1))
    return Member._default_manager.filter(match).order_by(username_first, "id").first()


class UsernameOrPhoneBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        if username is None:
            username = kwargs.get(Member.USERNAME_FIELD)
        if not username or password is None:
            return None
        member = find_login_member(str(username))
        if member is None:
            # Same work as a real check, so "no such member" takes as long as "wrong password".
            Member().set_password(password)
            return None
        if member.check_password(password) and self.user_can_authenticate(member):
            return member
        return None
