"""Users and groups in the admin, audited: who gave whom which power is in the SystemLog.

Group permissions decide what staff and API clients may do, so every change to a user or a
group made in the admin (fields, groups, permissions, passwords, deletions) writes one
SystemLog row in the same transaction, like every service does.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models import Model, Q, QuerySet
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


def held_permissions(actor: Any) -> set[str]:
    return set(actor.get_all_permissions())


def permissions_held_by(actor: Any) -> QuerySet[Permission]:
    """The permission rows the actor holds (all of them for a superuser)."""
    rows = Permission.objects.select_related("content_type")
    if actor.is_superuser:
        return rows
    held = Q(pk__in=[])
    for name in held_permissions(actor):
        app_label, codename = name.split(".", 1)
        held |= Q(content_type__app_label=app_label, codename=codename)
    return rows.filter(held)


def groups_within(actor: Any) -> QuerySet[Group]:
    """The groups whose every permission the actor holds: the ones it may hand out."""
    if actor.is_superuser:
        return Group.objects.all()
    beyond = Permission.objects.exclude(pk__in=permissions_held_by(actor).values("pk"))
    return Group.objects.exclude(permissions__in=beyond)


class PowerLimitedMixin:
    """A non-superuser never gives or edits more power than it holds itself.

    Users and groups that hold permissions the staff member lacks (and superusers) are shown
    read-only; the group and permission pickers offer only what the staff member holds, and
    Django's form refuses anything else that is posted.
    """

    def within_power(self, actor: Any, obj: Any) -> bool:
        raise NotImplementedError

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)  # type: ignore[misc]
        return allowed and (obj is None or self.within_power(request.user, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)  # type: ignore[misc]
        return allowed and (obj is None or self.within_power(request.user, obj))

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest | None = None, **kwargs: Any
    ) -> Any:
        if request is None:
            return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]
        if db_field.name in ("permissions", "user_permissions"):
            kwargs["queryset"] = permissions_held_by(request.user)
        elif db_field.name == "groups":
            kwargs["queryset"] = groups_within(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


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
class AuditedUserAdmin(ServiceAdminMixin, PowerLimitedMixin, AuditedAdminMixin, UserAdmin):
    audit_prefix = "user"

    def within_power(self, actor: Any, obj: Any) -> bool:
        if actor.is_superuser:
            return True
        return not obj.is_superuser and held_permissions(obj) <= held_permissions(actor)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("is_superuser")  # only a superuser makes another one
        return fields

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
class AuditedGroupAdmin(ServiceAdminMixin, PowerLimitedMixin, AuditedAdminMixin, GroupAdmin):
    audit_prefix = "group"

    def within_power(self, actor: Any, obj: Any) -> bool:
        return actor.is_superuser or set(_codenames(obj.permissions.all())) <= held_permissions(
            actor
        )

    def snapshot(self, obj: Model) -> dict[str, Any]:
        return group_snapshot(obj)  # type: ignore[arg-type]
