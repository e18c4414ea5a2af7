"""The example's routes (a POST to a view needs no Django CSRF token here: the project does
not install ``CsrfViewMiddleware``; tokenguard checks cookie-authenticated requests)."""

from __future__ import annotations

from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.home),
    path("users/me", views.users_me),
    path("private", views.private),
    path("admin", views.admin),
    path("login", views.login_page),
    path("static/<str:name>", views.static_file),
    path("api/me", api.Me.as_view()),
    path("api/editors", api.Editors.as_view()),
]
