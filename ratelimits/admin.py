"""The ops console for rate limits: rules change through the services; snapshots are read-only."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from ratelimits import services
from ratelimits.containment import contain_change
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.writeguard import contain, containment_allowed

SNAPSHOT_FIELDS = (
    "rule",
    "scope",
    "key",
    "window_seconds",
    "max_requests",
    "current_count",
    "window_started_at",
    "keys_over",
    "offenders",
    "report",
    "created_at",
    "updated_at",
)
RULE_FIELDS = ["scope", "key", "window_seconds", "max_requests", "enabled", "description"]


class RateLimitRuleForm(forms.ModelForm):
    class Meta:
        model = RateLimitRule
        fields = RULE_FIELDS


@admin.register(RateLimitRule)
class RateLimitRuleAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = RateLimitRuleForm
    list_display = [
        "id",
        "scope",
        "key",
        "max_requests",
        "window_seconds",
        "enabled",
        "description",
        "updated_at",
    ]
    list_display_links = ["id", "key"]
    list_filter = ["scope", "enabled", "window_seconds", "created_at"]
    search_fields = ["key", "description"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    actions = ["enable_rules", "disable_rules", "snapshot_counters"]

    def lockdown_allows(self, request: HttpRequest, obj: RateLimitRule | None) -> bool:
        """The rule form stays usable in a lockdown for those who may contain an incident."""
        return containment_allowed(request.user)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, object] | None = None,
    ) -> HttpResponse:
        """In a lockdown, adding a rule or tightening one contains an incident: allowed to
        holders of the containment permission (save_model refuses a loosening change)."""
        if request.method == "POST":
            with contain(request):
                return super().changeform_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: RateLimitRule, form: forms.ModelForm, change: bool
    ) -> None:
        data = {name: form.cleaned_data[name] for name in RULE_FIELDS}
        if change:
            stored = RateLimitRule.objects.get(pk=obj.pk)  # obj already carries the form's values
            with contain_change(request, stored, data):
                services.update_rule(actor=request.user, rule=stored, **data)
            return
        obj.pk = services.create_rule(actor=request.user, **data).pk

    def delete_model(self, request: HttpRequest, obj: RateLimitRule) -> None:
        services.delete_rule(actor=request.user, rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RateLimitRule]) -> None:
        for rule in queryset:
            services.delete_rule(actor=request.user, rule=rule)

    @admin.action(description="Enable selected rules", permissions=["change"])
    def enable_rules(self, request: HttpRequest, queryset: QuerySet[RateLimitRule]) -> None:
        for rule in queryset:
            services.update_rule(actor=request.user, rule=rule, enabled=True)
        self.message_user(request, f"Enabled {len(queryset)} rule(s).", messages.SUCCESS)

    @admin.action(description="Disable selected rules", permissions=["change"])
    def disable_rules(self, request: HttpRequest, queryset: QuerySet[RateLimitRule]) -> None:
        for rule in queryset:
            services.update_rule(actor=request.user, rule=rule, enabled=False)
        self.message_user(request, f"Disabled {len(queryset)} rule(s).", messages.SUCCESS)

    @admin.action(
        description="Snapshot the live counters of selected rules", permissions=["change"]
    )
    def snapshot_counters(self, request: HttpRequest, queryset: QuerySet[RateLimitRule]) -> None:
        states = services.snapshot_counters(actor=request.user, rules=list(queryset))
        self.message_user(request, f"Wrote {len(states)} snapshot(s).", messages.SUCCESS)


@admin.register(RateLimitSnapshot)
class RateLimitSnapshotAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "scope",
        "key",
        "current_count",
        "max_requests",
        "keys_over",
        "window_seconds",
        "window_started_at",
        "rule",
    ]
    list_filter = ["scope", "window_seconds", "created_at"]
    fields = SNAPSHOT_FIELDS
    readonly_fields = SNAPSHOT_FIELDS
    search_fields = ["key"]
    date_hierarchy = "created_at"
    list_select_related = ["rule"]

    @admin.display(description="top offenders")
    def offenders(self, obj: RateLimitSnapshot) -> str:
        """The highest counts of a report, one per line: `198.51.100.7: 940`."""
        pairs = ((o.get("value", ""), o.get("count", "")) for o in obj.top_offenders)
        return format_html_join(mark_safe("<br>"), "{}: {}", pairs) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: RateLimitSnapshot | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: RateLimitSnapshot | None = None
    ) -> bool:
        return False
