from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from ratelimits.keys import SCOPES, InvalidKey, normalize_key


class RateLimitRuleQuerySet(models.QuerySet["RateLimitRule"]):
    def enabled(self) -> "RateLimitRuleQuerySet":
        return self.filter(enabled=True)


class RateLimitRule(models.Model):
    class Scope(models.TextChoices):
        IP = "ip", "IP"
        API_KEY = "api_key", "API key"
        USER = "user"
        PATH = "path"
        GLOBAL = "global"

    scope = models.CharField(max_length=16, choices=Scope)
    key = models.CharField(
        max_length=255,
        help_text="A concrete value (IP or CIDR, client id, user id, path prefix) or '*': "
        "every distinct value in the scope gets its own counter.",
    )
    window_seconds = models.PositiveIntegerField(default=60)
    max_requests = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RateLimitRuleQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = "rate-limit rule"
        indexes = [models.Index(fields=["scope", "key"], name="ratelimit_rule_scope_key")]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=SCOPES), name="ratelimit_rule_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(window_seconds__gte=1), name="ratelimit_rule_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_requests__gte=1), name="ratelimit_rule_max_positive"
            ),
            models.CheckConstraint(
                condition=~Q(scope="global") | Q(key="*"), name="ratelimit_rule_global_any_key"
            ),
            models.UniqueConstraint(
                fields=["scope", "key", "window_seconds"],
                name="ratelimit_rule_unique_scope_key_window",
                violation_error_message="A rule with this scope, key and window already exists.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} {self.max_requests}/{self.window_seconds}s"

    def clean(self) -> None:
        try:
            self.key = normalize_key(self.scope, self.key)
        except InvalidKey as error:
            raise ValidationError({"key": str(error)}) from None


class RateLimitSnapshotQuerySet(models.QuerySet["RateLimitSnapshot"]):
    def exceeded(self) -> "RateLimitSnapshotQuerySet":
        """Snapshots of counters that were over their limit."""
        return self.filter(current_count__gt=F("max_requests"))

    def since(self, moment: datetime) -> "RateLimitSnapshotQuerySet":
        return self.filter(created_at__gte=moment)


class RateLimitSnapshot(models.Model):
    """A counter's state on demand, or the report of a rule's window in which counters went over.

    A report (`report` set: "<rule id>:<window seconds>:<window index>") is one row per rule and
    window however many counters went over: `keys_over` of them, the highest in
    `top_offenders`, and the highest count in `current_count`.
    """

    rule = models.ForeignKey(
        RateLimitRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="snapshots",
    )
    scope = models.CharField(max_length=16)
    key = models.CharField(max_length=255, help_text="The counted value (an IP, a client id…).")
    window_seconds = models.PositiveIntegerField()
    max_requests = models.PositiveIntegerField()
    current_count = models.PositiveIntegerField()
    window_started_at = models.DateTimeField()
    keys_over = models.PositiveIntegerField(
        default=0, help_text="Counters of the rule that went over the limit in this window."
    )
    top_offenders = models.JSONField(
        default=list,
        blank=True,
        help_text='The highest counts in the window, highest first: [{"value": …, "count": …}].',
    )
    report = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Rule id, window and window index of an excess report (empty for a snapshot "
        "taken on demand).",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RateLimitSnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "rate-limit snapshot"
        indexes = [models.Index(fields=["scope", "key"], name="ratelimit_snap_scope_key")]
        constraints = [
            models.UniqueConstraint(
                fields=["report"],
                condition=~Q(report=""),
                name="ratelimit_snap_one_per_report",
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} {self.current_count}/{self.max_requests}"

    @property
    def exceeded(self) -> bool:
        return self.current_count > self.max_requests
