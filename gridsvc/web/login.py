"""The web page's login form (登录) and the admin's: Django's, plus the refusals of
:mod:`gridsvc.accounts.lockout` (the address throttle, axes' lockout of a username on one
client) as a page with status 429 and ``Retry-After``."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.forms.forms import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from gridsvc.accounts.lockout import LoginRefusal, login_refusal


def _refuse(response: HttpResponse, refusal: LoginRefusal) -> HttpResponse:
    response.status_code = 429
    for name, value in refusal.headers.items():
        response[name] = value
    return response


class LoginView(auth_views.LoginView):
    """Sign in to the street office's page. An address that has failed too often, or a
    username locked on this browser, is told in the page and in ``Retry-After`` when it may
    try again (登录失败次数过多，请 N 分钟后再试); a wrong password re-shows the form (200), as
    Django's does."""

    template_name = "web/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        refusal = login_refusal(self.request)
        if refusal is None:
            return super().form_invalid(form)
        context = self.get_context_data(form=form, refusal=refusal)
        return _refuse(self.render_to_response(context), refusal)


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The admin's login (``admin.site.login``, its form and page unchanged), refusing as the
    web login does: status 429, ``Retry-After`` and the refusal's words in place of the
    form's "wrong username or password"."""
    response = admin.site.login(request, extra_context)
    refusal = login_refusal(request) if request.method == "POST" else None
    if refusal is None:
        return response
    context = response.context_data if isinstance(response, TemplateResponse) else None
    form = (context or {}).get("form")
    if form is not None and form.is_bound:
        form.errors[NON_FIELD_ERRORS] = form.error_class([refusal.message], error_class="nonfield")
    return _refuse(response, refusal)
