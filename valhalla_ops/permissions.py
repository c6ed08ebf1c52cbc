"""Deny by default: every API call needs the Django model permission for what it does."""

from typing import TYPE_CHECKING

from rest_framework import permissions
from rest_framework.request import Request

if TYPE_CHECKING:  # rest_framework.views imports this module through the DRF settings
    from rest_framework.views import APIView


class ModelPermissions(permissions.DjangoModelPermissions):
    """DjangoModelPermissions that also requires `view_` for reads.

    A viewset may name the permissions of its custom actions:
    `action_perms = {"activate": ["clients.change_apiclient"]}`.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: "APIView") -> bool:
        if not answers(view, request.method):
            # A method this resource does not have: DRF's 405, for whoever may read it.
            user = request.user
            if not (user and user.is_authenticated):
                return False
            model = self._queryset(view).model
            return user.has_perms(self.get_required_permissions("GET", model))
        action_perms = getattr(view, "action_perms", {})
        action = getattr(view, "action", None)
        if action in action_perms:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(action_perms[action]))
        return super().has_permission(request, view)


class HasPermission(permissions.BasePermission):
    """Require fixed permissions, for views without a queryset (`required_perms` on the view)."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if not answers(view, request.method):
            return True  # a method this view does not answer: DRF's 405 says so, not a 403
        method_perms = getattr(view, "required_perms", {})
        needed = method_perms.get(request.method, method_perms.get("*", ()))
        return bool(needed) and user.has_perms(needed)


def answers(view: "APIView", method: str | None) -> bool:
    """Whether the view has a handler for the method (a viewset: whether its route maps it)."""
    name = (method or "").lower()
    return name in view.http_method_names and hasattr(view, name)
