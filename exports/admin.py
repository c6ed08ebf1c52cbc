"""The ops console for export jobs: create, watch, retry, cancel; every change via services."""

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from rest_framework import exceptions, serializers
from rest_framework.fields import empty

from exports import services
from exports.models import ExportJob
from valhalla_ops import registry
from valhalla_ops.admin_pages import ServiceAdminMixin, refusal_errors
from valhalla_ops.models import SystemLog
from valhalla_ops.registry import ExportJobType

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


PARAM_PREFIX = "param_"
ANY = [("", "any")]


def param_field(name: str, field: serializers.Field) -> forms.Field:
    """The admin form field for one filter param of a job type's params serializer."""
    help_text = str(field.help_text or "")
    if isinstance(field, serializers.DateField):
        widget = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
        return forms.DateField(required=False, widget=widget, help_text=help_text)
    if isinstance(field, serializers.BooleanField):
        choices = [("", "any"), ("true", "yes"), ("false", "no")]
        return forms.ChoiceField(choices=choices, required=False, help_text=help_text)
    if isinstance(field, serializers.ChoiceField):
        default = field.default if field.default is not empty else ""
        options = [(key, str(label)) for key, label in field.choices.items()]
        choices = options if default else ANY + options
        return forms.ChoiceField(
            choices=choices, required=False, initial=default, help_text=help_text
        )
    if name == "category":  # the audit log's categories: the ones it holds
        found = SystemLog.objects.order_by().values_list("category", flat=True).distinct()
        return forms.ChoiceField(
            choices=ANY + [(value, value) for value in sorted(found)],
            required=False,
            help_text=help_text or "The part of the action before the dot (clients, auth, ...).",
        )
    return forms.CharField(
        required=False, max_length=getattr(field, "max_length", None), help_text=help_text
    )


def param_fields(job_type: ExportJobType) -> dict[str, forms.Field]:
    serializer = job_type.params_serializer()
    return {
        f"{PARAM_PREFIX}{name}": param_field(name, field)
        for name, field in serializer.fields.items()
    }


class ExportJobForm(forms.ModelForm):
    """The job type, then one field per filter param of that type (see `for_job_type`)."""

    job_type = forms.ChoiceField(
        choices=(),
        help_text="Changing the type reloads the form with the filters of that type.",
        widget=forms.Select(
            attrs={"onchange": "location.search = '?job_type=' + encodeURIComponent(this.value)"}
        ),
    )
    job_type_name = ""

    class Meta:
        model = ExportJob
        fields = ["job_type", "requested_by"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = registry.export_job_types.names()
        field = cast(forms.ChoiceField, self.fields["job_type"])
        field.choices = [(name, name) for name in names]
        field.initial = self.job_type_name

    @classmethod
    def for_job_type(cls, job_type: ExportJobType) -> type["ExportJobForm"]:
        fields = {**param_fields(job_type), "job_type_name": job_type.name}
        return type(cls.__name__, (cls,), fields)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        job_type = registry.export_job_types.get(data.get("job_type", ""))
        if job_type is None or job_type.name != self.job_type_name:
            return data
        params = {
            name.removeprefix(PARAM_PREFIX): value
            for name, value in data.items()
            if name.startswith(PARAM_PREFIX) and value not in ("", None)
        }
        try:
            data["filter_params"] = services.normalize_params(job_type=job_type, params=params)
        except exceptions.ValidationError as error:
            for name, text in refusal_errors(error):
                field = f"{PARAM_PREFIX}{(name or '').removeprefix('filter_params.')}"
                self.add_error(field if field in self.fields else None, text)
        return data


@admin.register(ExportJob)
class ExportJobAdmin(ServiceAdminMixin, admin.ModelAdmin):
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

    def job_type(self, request: HttpRequest) -> ExportJobType | None:
        """The type the add form is for: the one posted, else ?job_type=, else the first."""
        name = request.POST.get("job_type") or request.GET.get("job_type") or ""
        found = registry.export_job_types.get(name)
        if found is None and registry.export_job_types.names():
            found = registry.export_job_types.get(registry.export_job_types.names()[0])
        return found

    def get_form(
        self,
        request: HttpRequest,
        obj: ExportJob | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        job_type = self.job_type(request)
        if obj is not None:  # an existing job is read-only: no form fields at all
            kwargs["form"] = forms.ModelForm
        elif job_type is not None:
            kwargs["form"] = ExportJobForm.for_job_type(job_type)
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ExportJob | None = None) -> list[str]:
        if obj is None:
            return SYSTEM_FIELDS
        return ["job_type", "filter_params_json", "requested_by", *SYSTEM_FIELDS]

    def get_fields(
        self, request: HttpRequest, obj: ExportJob | None = None
    ) -> list[str | list[str] | tuple[str, ...]]:
        if obj is not None:
            return [*self.get_readonly_fields(request, obj)]
        job_type = self.job_type(request)
        params = list(param_fields(job_type)) if job_type is not None else []
        return ["job_type", *params, "requested_by"]

    def has_change_permission(self, request: HttpRequest, obj: ExportJob | None = None) -> bool:
        # A job is never edited by hand (the list's actions need "change" on the model).
        return obj is None and super().has_change_permission(request)

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
