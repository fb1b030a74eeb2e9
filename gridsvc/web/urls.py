from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .login import LoginView

app_name = "web"
urlpatterns = [
    path("", views.index, name="index"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
]
