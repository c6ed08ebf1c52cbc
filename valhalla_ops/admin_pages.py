"""What every app's admin shares: refusals shown on the page, atomic bulk actions, forms
disabled while writes are refused, and secrets shown once after a redirect.

`ServiceAdminMixin` goes first in the bases of every ModelAdmin of the project.
"""

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from rest_framework.exceptions import APIException

from valhalla_ops import registry
from valhalla_ops.audit import keep_refusal

ISSUED_SESSION_KEY = "valhalla_ops.issued"
MAX_ISSUED_PAGES = 10  # pages waiting in one session; older ones are dropped unseen


def is_refusal(error: Exception) -> bool:
    """A business rule said no (ServiceError, validation, a conflict): not a server fault."""
    if isinstance(error, DjangoValidationError):
        return True
    return isinstance(error, APIException) and 400 <= error.status_code < 500


def refusal_errors(error: Exception) -> list[tuple[str | None, str]]:
    """(field or None, message) pairs of a refusal, in the order the service gave them."""
    if isinstance(error, DjangoValidationError):
        if hasattr(error, "error_dict"):
            return [
                (None if name == "__all__" else name, text)
                for name, texts in error.message_dict.items()
                for text in texts
            ]
        return [(None, text) for text in error.messages]
    return _detail_errors(getattr(error, "detail", str(error)), None)


def _detail_errors(detail: Any, field: str | None) -> list[tuple[str | None, str]]:
    if isinstance(detail, dict):
        pairs = []
        for name, value in detail.items():
            inner = None if name in ("non_field_errors", "detail") else str(name)
            pairs += _detail_errors(value, f"{field}.{inner}" if field and inner else inner)
        return pairs
    if isinstance(detail, list):
        return [pair for item in detail for pair in _detail_errors(item, field)]
    return [(field, str(detail))]


def refusal_text(error: Exception) -> str:
    return " ".join(f"{field}: {text}" if field else text for field, text in refusal_errors(error))


def with_refusal(
    form_class: "type[forms.ModelForm[Any]]", error: Exception
) -> "type[forms.ModelForm[Any]]":
    """The form class again, its validation ending with the service's refusal."""
    pairs = refusal_errors(error)

    class RefusedForm(form_class):  # type: ignore[valid-type,misc]
        def clean(self) -> dict[str, Any] | None:
            data = super().clean()
            for field, text in pairs:
                if field in self.fields:
                    self.add_error(field, text)
                else:
                    self.add_error(None, f"{field}: {text}" if field else text)
            return data

    RefusedForm.__name__ = form_class.__name__
    return RefusedForm


class ServiceAdminMixin:
    """The project's admin behaviour, for a ModelAdmin whose writes go through services.

    - A refusal from a service (`ServiceError`, a validation error) while saving is shown as
      a form error on the page, with the operator's input kept; on a deletion or a bulk
      action it is an error message. Never a server error.
    - A bulk action runs in one transaction: all of it or, on a refusal, none of it.
    - While writes are refused (read-only or maintenance mode), add and change forms are
      shown disabled with the reason, unless `lockdown_allows()` says this write may go on.
    - `issue_once()` shows freshly issued secrets after a redirect, so a reload never posts
      the form again; the secrets wait in the session until that page shows them, once.
    """

    issued_template = ""
    issued_title = "Issued secrets"

    def lockdown_allows(self, request: HttpRequest, obj: Any) -> bool:
        """Whether this write stays allowed while writes are refused (containment)."""
        return False

    def lockdown_notice(self, request: HttpRequest, obj: Any) -> str | None:
        """Why the add/change form is disabled now, or None when it can be saved."""
        for _name, explain in registry.admin_lockdowns.items():
            notice = explain(request)
            if notice:
                return None if self.lockdown_allows(request, obj) else notice
        return None

    # --- refusals on the change form ---------------------------------------------------

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except Exception as error:
            if not is_refusal(error) or request.method != "POST":
                raise
            # The first pass rolled back; the second validates the same input again and ends
            # with the refusal as form errors, so Django renders the form as for any error.
            request._service_refusal = error  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> "type[forms.ModelForm[Any]]":
        form_class = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        refusal = getattr(request, "_service_refusal", None)
        return form_class if refusal is None else with_refusal(form_class, refusal)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        except Exception as error:
            if not is_refusal(error):
                raise
            self.message_user(request, f"Not deleted: {refusal_text(error)}", messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())

    # --- lockdown ------------------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        notice = self.lockdown_notice(request, obj)
        if notice:
            for field in context["adminform"].form.fields.values():
                field.disabled = True
            context.update(
                lockdown_notice=notice,
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                show_delete=False,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)  # type: ignore[misc]

    # --- bulk actions --------------------------------------------------------------------

    def response_action(
        self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        queued = getattr(messages.get_messages(request), "_queued_messages", [])
        already = len(queued)
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):  # type: ignore[attr-defined]
                return super().response_action(request, queryset, *args, **kwargs)  # type: ignore[misc]
        except Exception as error:
            if not is_refusal(error):
                raise
            keep_refusal(error)  # on record although the action rolled back
            del queued[already:]  # the action's own reports describe what was rolled back
            self.message_user(  # type: ignore[attr-defined]
                request, f"Nothing was changed: {refusal_text(error)}", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())

    # --- secrets shown once --------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta  # type: ignore[attr-defined]
        issued = path(
            "issued/<str:token>/",
            self.admin_site.admin_view(self.issued_view),  # type: ignore[attr-defined]
            name=f"{opts.app_label}_{opts.model_name}_issued",
        )
        return [issued, *super().get_urls()]  # type: ignore[misc]

    def issue_once(self, request: HttpRequest, issued: list[tuple[Any, str]]) -> HttpResponse:
        """Keep the secrets in the session and redirect to the page that shows them once."""
        token = secrets.token_urlsafe(16)
        waiting = dict(request.session.get(ISSUED_SESSION_KEY, {}))
        waiting[token] = [[obj.pk, secret] for obj, secret in issued]
        request.session[ISSUED_SESSION_KEY] = dict(list(waiting.items())[-MAX_ISSUED_PAGES:])
        opts = self.model._meta  # type: ignore[attr-defined]
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_issued",
            args=[token],
            current_app=self.admin_site.name,  # type: ignore[attr-defined]
        )
        return HttpResponseRedirect(url)

    def issued_view(self, request: HttpRequest, token: str) -> HttpResponse:
        waiting = dict(request.session.get(ISSUED_SESSION_KEY, {}))
        pairs = waiting.pop(token, None)
        if pairs is not None:
            request.session[ISSUED_SESSION_KEY] = waiting
        by_pk = self.model._default_manager.in_bulk([pk for pk, _ in pairs or []])  # type: ignore[attr-defined]
        issued = [(by_pk[pk], secret) for pk, secret in pairs or [] if pk in by_pk]
        return show_once(
            self,  # type: ignore[arg-type]
            request,
            template=self.issued_template,
            title=self.issued_title,
            issued=issued,
            already_shown=pairs is None,
        )


def show_once(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    template: str,
    title: str,
    issued: list[tuple[Any, str]],
    already_shown: bool = False,
) -> HttpResponse:
    """A page with secrets issued just now (keys, signing secrets), never stored by a cache.

    `already_shown`: the page was loaded again; the secrets are gone from the session.
    """
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "issued": issued,
        "already_shown": already_shown,
        "title": title,
    }
    response = TemplateResponse(request, template, context)
    response["Cache-Control"] = "no-store"
    return response
