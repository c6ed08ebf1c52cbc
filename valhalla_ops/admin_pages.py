"""Admin pages shared by the apps."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def show_once(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    template: str,
    title: str,
    issued: list[tuple[Any, str]],
) -> HttpResponse:
    """A page with secrets issued just now (keys, signing secrets), never stored by a cache.

    The secrets live only in this response: not in the session, not in the messages framework.
    """
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "issued": issued,
        "title": title,
    }
    response = TemplateResponse(request, template, context)
    response["Cache-Control"] = "no-store"
    return response
