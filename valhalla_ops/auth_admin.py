"""Users and groups in the admin, audited: who gave whom which power is in the SystemLog.

Group permissions decide what staff and API clients may do, so every change to a user or a
group made in the admin (fields, groups, permissions, passwords, deletions) writes one
SystemLog row in the same transaction, like every service does.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.audit import record_change

# Importing django.contrib.auth.admin registered the stock classes; these replace them.
admin.site.unregister(User)
admin.site.unregister(Group)


def user_snapshot(user: User) -> dict[str, Any]:
    """The audited view of a user (never the password hash)."""
    return {
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": sorted(user.groups.values_list("name", flat=True)) if user.pk else [],
        "user_permissions": _codenames(user.user_permissions.all()) if user.pk else [],
    }


def group_snapshot(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "permissions": _codenames(group.permissions.all()) if group.pk else [],
    }


def _codenames(permissions: QuerySet) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in permissions.values_list("content_type__app_label", "codename")
    )


class AuditedAdminMixin:
    """Record one row per save (after its many-to-many fields) and per deletion."""

    audit_prefix = ""

    def snapshot(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        if change:  # the row as it was, read before the form's values are written
            request._audit_before = self.snapshot(type(obj).objects.get(pk=obj.pk))  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[misc]
        obj = form.instance
        before = getattr(request, "_audit_before", None) if change else None
        after = self.snapshot(obj)
        if change and before == after:
            return
        verb = "update" if change else "create"
        record_change(
            actor=request.user,
            action=f"auth.{verb}_{self.audit_prefix}",
            target=obj,
            before=before,
            after=after,
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            record_change(  # before the deletion, while the row still has its id
                actor=request.user,
                action=f"auth.delete_{self.audit_prefix}",
                target=obj,
                message=f"{self.audit_prefix} {obj} deleted",
                before=self.snapshot(obj),
            )
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():  # the deletions and their audit rows, all or nothing
            for obj in queryset:  # one row per deleted object, as for a single deletion
                self.delete_model(request, obj)


@admin.register(User)
class AuditedUserAdmin(ServiceAdminMixin, AuditedAdminMixin, UserAdmin):
    audit_prefix = "user"

    def snapshot(self, obj: Model) -> dict[str, Any]:
        return user_snapshot(obj)  # type: ignore[arg-type]

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:  # the form was saved
                user = User.objects.get(pk=id)
                record_change(
                    actor=request.user,
                    action="auth.change_password",
                    target=user,
                    message=f"Password of {user.username} changed in the admin",
                )
        return response


@admin.register(Group)
class AuditedGroupAdmin(ServiceAdminMixin, AuditedAdminMixin, GroupAdmin):
    audit_prefix = "group"

    def snapshot(self, obj: Model) -> dict[str, Any]:
        return group_snapshot(obj)  # type: ignore[arg-type]
