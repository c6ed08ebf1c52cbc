from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from valhalla_ops import auth_admin  # noqa: F401  (audited users and groups)
from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.models import SystemLog

TARGET_CHARS = 48


@admin.register(SystemLog)
class SystemLogAdmin(ServiceAdminMixin, admin.ModelAdmin):
    # Fits a 1280 px window beside the filters: long targets are cut (whole on hover and on the
    # detail page); the request id is on the detail page and searchable.
    list_display = ["created_at", "level", "action", "actor", "short_target", "client_ip"]
    list_filter = ["level", "category", "actor_type", "created_at"]
    search_fields = ["action", "message", "actor", "target", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = False

    @admin.display(description="target", ordering="target")
    def short_target(self, obj: SystemLog) -> str:
        if len(obj.target) <= TARGET_CHARS:
            return obj.target
        short = Truncator(obj.target).chars(TARGET_CHARS)
        return format_html('<span title="{}">{}</span>', obj.target, short)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SystemLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SystemLog | None = None) -> bool:
        return False
