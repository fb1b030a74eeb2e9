"""Log in with a username or a phone number (手机号登录)."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from .models import Member


class UsernameOrPhoneBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None or not username or not username.isdigit():
            return user
        member = Member.objects.filter(phone=username, is_active=True).first()
        if member and member.check_password(password) and self.user_can_authenticate(member):
            return member
        return None
