"""The ops console for export jobs: create, watch, retry, cancel; every change via services."""

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from rest_framework import exceptions

from exports import services
from exports.models import ExportJob
from valhalla_ops import registry

SYSTEM_FIELDS = [
    "status",
    "storage_url",
    "error_message",
    "requested_by_actor",
    "row_count",
    "rows_written",
    "attempts",
    "locked_until",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "download",
]


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [f"{key}: {text}" for key, value in detail.items() for text in _messages(value)]
    if isinstance(detail, list):
        return [text for item in detail for text in _messages(item)]
    return [str(detail)]


class ExportJobForm(forms.ModelForm):
    job_type = forms.ChoiceField(choices=())
    filter_params = forms.JSONField(required=False, initial=dict)

    class Meta:
        model = ExportJob
        fields = ["job_type", "filter_params", "requested_by"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = registry.export_job_types.names()
        cast(forms.ChoiceField, self.fields["job_type"]).choices = [(name, name) for name in names]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        job_type = registry.export_job_types.get(data.get("job_type", ""))
        if job_type is not None:
            try:
                services.normalize_params(job_type=job_type, params=data.get("filter_params"))
            except exceptions.ValidationError as error:
                self.add_error("filter_params", _messages(error.detail))
        return data


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    form = ExportJobForm
    list_display = [
        "id",
        "job_type",
        "status",
        "requested_by",
        "rows_written",
        "row_count",
        "attempts",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "job_type", "created_at"]
    search_fields = ["job_type", "requested_by", "requested_by_actor", "error_message"]
    date_hierarchy = "created_at"
    actions = ["retry_jobs", "cancel_jobs"]

    def get_form(
        self,
        request: HttpRequest,
        obj: ExportJob | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        if obj is not None:  # an existing job is read-only: no form fields at all
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ExportJob | None = None) -> list[str]:
        if obj is None:
            return SYSTEM_FIELDS
        return ["job_type", "filter_params_json", "requested_by", *SYSTEM_FIELDS]

    def get_fields(
        self, request: HttpRequest, obj: ExportJob | None = None
    ) -> list[str | list[str] | tuple[str, ...]]:
        if obj is None:
            return ["job_type", "filter_params", "requested_by"]
        return [*self.get_readonly_fields(request, obj)]

    @admin.display(description="filter params")
    def filter_params_json(self, obj: ExportJob) -> str:
        return json.dumps(obj.filter_params, sort_keys=True)

    @admin.display(description="file")
    def download(self, obj: ExportJob) -> str:
        if obj.status != ExportJob.Status.COMPLETED or not obj.file:
            return "—"
        return format_html('<a href="{}">Download</a>', services.download_path(obj))

    def save_model(
        self, request: HttpRequest, obj: ExportJob, form: forms.ModelForm, change: bool
    ) -> None:
        if change:  # every field of an existing job is read-only
            return
        job = services.create_export(
            actor=request.user,
            job_type=form.cleaned_data["job_type"],
            filter_params=form.cleaned_data.get("filter_params"),
            requested_by=form.cleaned_data.get("requested_by", ""),
        )
        obj.pk = job.pk

    def has_delete_permission(self, request: HttpRequest, obj: ExportJob | None = None) -> bool:
        if obj is not None and obj.status == ExportJob.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: ExportJob) -> None:
        services.delete_export(actor=request.user, job=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        self._each(request, queryset, services.delete_export, "Deleted")

    @admin.action(description="Retry selected failed jobs", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        self._each(
            request,
            queryset.filter(status=ExportJob.Status.FAILED),
            services.retry_export,
            "Retried",
        )

    @admin.action(description="Cancel selected pending jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        self._each(
            request,
            queryset.filter(status=ExportJob.Status.PENDING),
            services.cancel_export,
            "Cancelled",
        )

    def _each(
        self, request: HttpRequest, queryset: QuerySet[ExportJob], service: Any, verb: str
    ) -> None:
        done = 0
        for job in queryset:
            try:
                service(actor=request.user, job=job)
                done += 1
            except exceptions.APIException as error:  # it changed state meanwhile
                self.message_user(request, f"#{job.pk}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
