from django.contrib import admin
from django.http import HttpRequest

from valhalla_ops import auth_admin  # noqa: F401  (audited users and groups)
from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.models import SystemLog


@admin.register(SystemLog)
class SystemLogAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "level", "action", "actor", "target", "client_ip", "request_id"]
    list_filter = ["level", "category", "actor_type", "created_at"]
    search_fields = ["action", "message", "actor", "target", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SystemLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SystemLog | None = None) -> bool:
        return False
