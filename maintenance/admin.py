"""The maintenance console: windows, and a page that shows and switches the mode."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from maintenance import services
from maintenance.models import MaintenanceState, MaintenanceWindow, Mode
from maintenance.state import StateNotPublished
from valhalla_ops.admin_pages import ServiceAdminMixin, is_refusal, refusal_errors
from valhalla_ops.exceptions import ServiceError


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["starts_at", "ends_at", "mode", "active", "description"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.instance.pk is None or self.errors:
            return data
        changes = {name: data[name] for name in self.changed_data if name in data}
        try:
            services.check_window_update(self.instance, changes)  # the instance is unchanged yet
        except ServiceError as error:
            raise forms.ValidationError(str(error.detail)) from error
        return data


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = [
        "id",
        "starts_at",
        "ends_at",
        "mode",
        "active",
        "description",
        "started_at",
        "ended_at",
    ]
    list_filter = ["active", "mode", "starts_at"]
    search_fields = ["description"]
    date_hierarchy = "starts_at"
    readonly_fields = ["started_at", "ended_at", "created_at", "updated_at"]
    actions = ["deactivate_windows"]

    def save_model(
        self, request: HttpRequest, obj: MaintenanceWindow, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            stored = MaintenanceWindow.objects.get(pk=obj.pk)  # obj carries the form's values
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            services.update_window(actor=request.user, window=stored, **changes)
            return
        fields = {name: form.cleaned_data[name] for name in MaintenanceWindowForm.Meta.fields}
        obj.pk = services.create_window(actor=request.user, **fields).pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel a window with active=False: its history stays

    @admin.action(description="Deactivate selected windows", permissions=["change"])
    def deactivate_windows(
        self, request: HttpRequest, queryset: QuerySet[MaintenanceWindow]
    ) -> None:
        active = list(queryset.filter(active=True))
        for window in active:
            services.update_window(actor=request.user, window=window, active=False)
        skipped = len(queryset) - len(active)
        self.message_user(
            request,
            f"Deactivated {len(active)} window(s); skipped {skipped} already inactive.",
            messages.SUCCESS,
        )


class ModeSwitchForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices)
    reason = forms.CharField(
        max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


@admin.register(MaintenanceState)
class MaintenanceStateAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """One page instead of a change list: the mode, the windows, and a switch."""

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.state_view), name=name)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def state_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        can_change = self.has_change_permission(request)
        form = ModeSwitchForm(request.POST or None) if can_change else None
        if request.method == "POST":
            if form is None:
                raise PermissionDenied
            if form.is_valid():
                try:
                    state = services.set_mode(actor=request.user, **form.cleaned_data)
                except StateNotPublished as error:  # saved, but other processes may not know yet
                    self.message_user(request, str(error.detail), messages.ERROR)
                    return HttpResponseRedirect(request.path)
                except Exception as error:
                    if not is_refusal(error):
                        raise
                    for field, text in refusal_errors(error):
                        form.add_error(field if field in form.fields else None, text)
                else:
                    self.message_user(
                        request, f"Maintenance mode is now {state.mode}.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(request.path)
        return TemplateResponse(
            request, "admin/maintenance/state.html", self.page_context(request, form)
        )

    def page_context(self, request: HttpRequest, form: forms.Form | None) -> dict[str, Any]:
        state = services.read_state()
        if form is not None and not form.is_bound:
            form.initial = {"mode": state.mode}  # a new switch needs its own reason
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Maintenance mode",
            "state": state,
            "windows": MaintenanceWindow.objects.not_over(timezone.now())[:20],
            "form": form,
        }
