"""The ops console for API clients: every change goes through the services."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from clients import services
from clients.models import ApiClient
from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.exceptions import Forbidden
from valhalla_ops.writeguard import contain

# Incident containment: these actions stay available in a lockdown to holders of the
# containment permission (the shield lets the list's POST reach this view).
CONTAINMENT_ACTIONS = frozenset({"deactivate_clients", "rotate_keys"})


class ApiClientForm(forms.ModelForm):
    class Meta:
        model = ApiClient
        fields = ["name", "client_type", "description", "groups", "expires_at"]


@admin.register(ApiClient)
class ApiClientAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = ApiClientForm
    issued_template = "admin/clients/new_keys.html"
    issued_title = "New API keys"
    list_display = [
        "name",
        "client_type",
        "key_prefix",
        "active",
        "expires_at",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["active", "client_type", "groups", "created_at"]
    search_fields = ["name", "description", "key_prefix"]
    readonly_fields = [
        "key_prefix",
        "active",
        "last_used_at",
        "previous_key_expires_at",
        "created_at",
        "updated_at",
    ]
    filter_horizontal = ["groups"]
    date_hierarchy = "created_at"
    actions = ["activate_clients", "deactivate_clients", "rotate_keys"]

    def has_change_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        """A client more powerful than the user is shown read-only."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or services.holds_power_over(request.user, obj))

    def has_delete_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or services.holds_power_over(request.user, obj))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and object_id:
            self._check_power(request, object_id, "update")
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            self._check_power(request, object_id, "delete")
        return super().delete_view(request, object_id, extra_context)

    def _check_power(self, request: HttpRequest, object_id: str, verb: str) -> None:
        """A change posted for a client the user may not change: refused (403) and audited."""
        client = self.get_object(request, object_id)
        if client is None:
            return
        try:
            services.check_power(actor=request.user, client=client, verb=verb)
        except Forbidden as error:
            raise PermissionDenied(str(error.detail)) from None

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and request.POST.get("action") in CONTAINMENT_ACTIONS:
            with contain(request):
                return super().changelist_view(request, extra_context)
        return super().changelist_view(request, extra_context)

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool
    ) -> None:
        data = {
            name: form.cleaned_data[name]
            for name in ("name", "client_type", "description", "expires_at")
        }
        groups = list(form.cleaned_data.get("groups", []))
        if change:
            stored = ApiClient.objects.get(pk=obj.pk)  # obj already carries the form's values
            services.update_client(actor=request.user, client=stored, groups=groups, **data)
            return
        client, raw_key = services.create_client(actor=request.user, groups=groups, **data)
        obj.pk = client.pk
        request._new_api_keys = [(client, raw_key)]  # type: ignore[attr-defined]

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        """Groups are set by the service, inside its transaction and audit row."""

    def delete_model(self, request: HttpRequest, obj: ApiClient) -> None:
        services.delete_client(actor=request.user, client=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            services.delete_client(actor=request.user, client=client)

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self.issue_once(request, getattr(request, "_new_api_keys", []))

    @admin.action(description="Activate selected clients", permissions=["change"])
    def activate_clients(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            services.activate_client(actor=request.user, client=client)
        self.message_user(request, f"Activated {queryset.count()} client(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected clients", permissions=["change"])
    def deactivate_clients(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            services.deactivate_client(actor=request.user, client=client)
        self.message_user(request, f"Deactivated {queryset.count()} client(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate keys of selected clients (old keys stop at once)",
        permissions=["change"],
    )
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> HttpResponse:
        issued = [services.rotate_client(actor=request.user, client=client) for client in queryset]
        return self.issue_once(request, issued)
