"""The ops console for retention: policies (changed through services) and purge runs (read-only)."""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework import exceptions

from retention import modes, purger, services
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops.admin_pages import ServiceAdminMixin


class DataRetentionPolicyForm(forms.ModelForm):
    category = forms.ChoiceField(choices=())
    days_to_keep = forms.IntegerField(min_value=1, max_value=services.MAX_DAYS)

    class Meta:
        model = DataRetentionPolicy
        fields = ["category", "days_to_keep", "enabled", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "category" in self.fields:  # read-only once the policy exists
            field = cast(forms.ChoiceField, self.fields["category"])
            field.choices = [(n, n) for n in services.registered_categories()]


@admin.register(DataRetentionPolicy)
class DataRetentionPolicyAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = DataRetentionPolicyForm
    list_display = ["category", "days_to_keep", "enabled", "description", "updated_at"]
    list_filter = ["enabled", "updated_at"]
    search_fields = ["category", "description"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "updated_at"
    actions = ["dry_run", "purge_now", "enable_policies", "disable_policies"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: DataRetentionPolicy | None = None
    ) -> list[str]:
        return ["category", *self.readonly_fields] if obj else self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: DataRetentionPolicy, form: forms.ModelForm, change: bool
    ) -> None:
        data = {
            name: form.cleaned_data[name] for name in ("days_to_keep", "enabled", "description")
        }
        if change:
            stored = DataRetentionPolicy.objects.get(pk=obj.pk)  # obj carries the form's values
            services.update_policy(actor=request.user, policy=stored, **data)
            return
        policy, _created = services.upsert_policy(
            actor=request.user, category=form.cleaned_data["category"], **data
        )
        obj.pk = policy.pk

    def delete_model(self, request: HttpRequest, obj: DataRetentionPolicy) -> None:
        services.delete_policy(actor=request.user, policy=obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[DataRetentionPolicy]
    ) -> None:
        for policy in queryset:
            services.delete_policy(actor=request.user, policy=policy)

    @admin.action(description="Dry run: count what would be purged", permissions=["view"])
    def dry_run(self, request: HttpRequest, queryset: QuerySet[DataRetentionPolicy]) -> None:
        for policy in queryset:
            run = purger.purge_policy(policy=policy, actor=request.user, dry_run=True)
            self._report(request, run, "would delete")

    @admin.action(
        description="Purge now (expired rows of selected policies)", permissions=["delete"]
    )
    def purge_now(self, request: HttpRequest, queryset: QuerySet[DataRetentionPolicy]) -> None:
        """Schedule a run per policy for the worker; the page returns at once."""
        if not modes.purges_allowed():
            self.message_user(
                request, f"Purges are paused in {modes.current_mode()} mode.", messages.ERROR
            )
            return
        for policy in queryset.filter(enabled=True):
            try:
                run = services.schedule_purge(actor=request.user, policy=policy)
            except exceptions.APIException as error:
                self.message_user(request, f"{policy.category}: {error.detail}", messages.WARNING)
                continue
            text = f"{run.category}: purge scheduled (run #{run.pk}); the worker runs it next."
            self.message_user(request, text, messages.SUCCESS)

    def _report(self, request: HttpRequest, run: PurgeRun, verb: str) -> None:
        if run.status == PurgeRun.Status.FAILED:
            self.message_user(request, f"{run.category}: failed: {run.error}", messages.ERROR)
            return
        text = (
            f"{run.category}: {verb} {run.deleted} row(s) older than {run.cutoff:%Y-%m-%d %H:%M}."
        )
        self.message_user(request, text, messages.SUCCESS)

    @admin.action(description="Enable selected policies", permissions=["change"])
    def enable_policies(
        self, request: HttpRequest, queryset: QuerySet[DataRetentionPolicy]
    ) -> None:
        for policy in queryset:
            services.update_policy(actor=request.user, policy=policy, enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} policy(ies).", messages.SUCCESS)

    @admin.action(description="Disable selected policies", permissions=["change"])
    def disable_policies(
        self, request: HttpRequest, queryset: QuerySet[DataRetentionPolicy]
    ) -> None:
        for policy in queryset:
            services.update_policy(actor=request.user, policy=policy, enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} policy(ies).", messages.SUCCESS)


@admin.register(PurgeRun)
class PurgeRunAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "category",
        "started_at",
        "dry_run",
        "status",
        "deleted",
        "cascaded",
        "batches",
        "cutoff",
        "triggered_by",
    ]
    list_filter = ["status", "dry_run", "category", "started_at"]
    search_fields = ["category", "error", "triggered_by"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PurgeRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PurgeRun | None = None) -> bool:
        return False
