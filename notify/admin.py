"""The ops console for notifications: every change goes through the services."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.text import Truncator

from notify import services, validators
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.admin_pages import ServiceAdminMixin
from valhalla_ops.exceptions import ServiceError

ERROR_CHARS = 80  # of last_error in the outbox list
CHANNEL_FORM_FIELDS = ["name", "channel_type", "target", "active", "description", "events"]


class NotificationChannelForm(forms.ModelForm):
    """Events are picked from the known topics and their wildcards, plus any other patterns."""

    events = forms.MultipleChoiceField(
        choices=validators.topic_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The events this channel receives. None: only notifications sent to it.",
    )
    other_events = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Other topic patterns, comma separated (shell-style: *, ?, [...]).",
    )

    class Meta:
        model = NotificationChannel
        fields = CHANNEL_FORM_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = {value for value, _label in validators.topic_choices()}
        stored = (self.instance.events or []) if self.instance.pk else []
        self.initial["events"] = [pattern for pattern in stored if pattern in known]
        self.initial["other_events"] = ", ".join(p for p in stored if p not in known)

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        error = validators.target_error(data.get("channel_type", ""), data.get("target", ""))
        if error:
            self.add_error("target", error)
        others = [p.strip() for p in data.pop("other_events", "").split(",") if p.strip()]
        data["events"] = list(dict.fromkeys([*data.get("events", []), *others]))
        error = validators.events_error(data["events"])
        if error:
            self.add_error("other_events" if others else "events", error)
        return data


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = NotificationChannelForm
    issued_template = "admin/notify/new_secrets.html"
    issued_title = "Webhook signing secrets"
    list_display = [
        "name",
        "channel_type",
        "target",
        "active",
        "events",
        "failing_since",
        "created_at",
    ]
    list_filter = ["channel_type", "active", "created_at"]
    search_fields = ["name", "target", "description"]
    readonly_fields = ["failing_since", "disabled_reason", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    actions = ["send_test", "activate_channels", "deactivate_channels", "rotate_secrets"]

    def save_model(
        self, request: HttpRequest, obj: NotificationChannel, form: forms.ModelForm, change: bool
    ) -> None:
        data = {name: form.cleaned_data[name] for name in CHANNEL_FORM_FIELDS}
        if change:
            stored = NotificationChannel.objects.get(pk=obj.pk)  # obj carries the form's values
            services.update_channel(actor=request.user, channel=stored, **data)
            return
        channel, secret = services.create_channel(actor=request.user, **data)
        obj.pk = channel.pk
        request._new_secrets = [(channel, secret)]  # type: ignore[attr-defined]

    def has_delete_permission(
        self, request: HttpRequest, obj: NotificationChannel | None = None
    ) -> bool:
        return False  # the outbox keeps its history: deactivate a channel instead

    def response_add(
        self, request: HttpRequest, obj: NotificationChannel, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self.issue_once(request, getattr(request, "_new_secrets", []))

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for channel in queryset:
            try:
                services.send_test_notification(actor=request.user, channel=channel)
            except ServiceError as error:
                self.message_user(request, f"{channel.name}: {error.detail}", messages.ERROR)
            else:
                self.message_user(request, f"Test notification queued for {channel.name}.")

    @admin.action(description="Activate selected channels", permissions=["change"])
    def activate_channels(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> None:
        for channel in queryset:
            services.update_channel(actor=request.user, channel=channel, active=True)
        self.message_user(request, f"Activated {len(queryset)} channel(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected channels", permissions=["change"])
    def deactivate_channels(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> None:
        for channel in queryset:
            services.update_channel(actor=request.user, channel=channel, active=False)
        self.message_user(request, f"Deactivated {len(queryset)} channel(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate signing secrets (old ones stop at once)", permissions=["change"]
    )
    def rotate_secrets(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> HttpResponse:
        issued = [services.rotate_channel_secret(actor=request.user, channel=c) for c in queryset]
        return self.issue_once(request, issued)


@admin.register(NotificationOutbox)
class NotificationOutboxAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "channel",
        "topic",
        "subject",
        "status",
        "attempts",
        "error",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["status", "channel__channel_type", "channel", "created_at"]
    search_fields = ["subject", "body", "topic", "=message_id", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["channel"]
    readonly_fields = [
        "message_id",
        "channel",
        "topic",
        "subject",
        "body",
        "payload",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "locked_until",
        "sent_at",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields]
    actions = ["retry_failed", "requeue_pending"]

    @admin.display(description="last error", ordering="last_error")
    def error(self, obj: NotificationOutbox) -> str:
        """The start of the last error; the whole of it on hover and on the detail page."""
        if not obj.last_error:
            return "—"
        short = Truncator(obj.last_error).chars(ERROR_CHARS)
        return format_html('<span class="last-error" title="{}">{}</span>', obj.last_error, short)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # notifications come from the API, events and the channels' test action

    def has_change_permission(
        self, request: HttpRequest, obj: NotificationOutbox | None = None
    ) -> bool:
        # The list's actions need "change"; a notification itself is never edited by hand.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(
        self, request: HttpRequest, obj: NotificationOutbox | None = None
    ) -> bool:
        return False  # retention purges sent and failed notifications

    @admin.action(description="Retry selected failed notifications", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[NotificationOutbox]) -> None:
        failed = queryset.filter(status=NotificationOutbox.Status.FAILED)
        for notification in failed:
            services.retry_notification(actor=request.user, notification=notification)
        skipped = queryset.count() - len(failed)
        self.message_user(
            request, f"Retrying {len(failed)} notification(s); skipped {skipped} not failed."
        )

    @admin.action(description="Send selected pending notifications now", permissions=["change"])
    def requeue_pending(self, request: HttpRequest, queryset: QuerySet[NotificationOutbox]) -> None:
        pending = queryset.filter(status=NotificationOutbox.Status.PENDING)
        for notification in pending:
            services.requeue_notification(actor=request.user, notification=notification)
        skipped = queryset.count() - len(pending)
        self.message_user(
            request, f"Requeued {len(pending)} notification(s); skipped {skipped} not pending."
        )
