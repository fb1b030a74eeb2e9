"""The web page's login form (登录): Django's, plus the failure throttle's refusal
(:mod:`gridsvc.accounts.throttle`) as a page with status 429 and ``Retry-After``."""

from __future__ import annotations

import math

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse

from gridsvc.accounts.throttle import client_ip, seconds_until_allowed, was_throttled


class LoginView(auth_views.LoginView):
    """Sign in to the street office's page. An address that has failed too often is told,
    in the page and in ``Retry-After``, when it may try again (登录失败次数过多，请 N 分钟后再试);
    a wrong password re-shows the form (200), as Django's does."""

    template_name = "web/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        if not was_throttled(self.request):
            return super().form_invalid(form)
        wait = max(1, seconds_until_allowed(client_ip(self.request)))
        context = self.get_context_data(form=form, retry_after_minutes=math.ceil(wait / 60))
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response
