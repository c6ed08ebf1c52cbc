from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiClientQuerySet(models.QuerySet["ApiClient"]):
    def active(self) -> "ApiClientQuerySet":
        now = timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), active=True)

    def with_key_hash(self, key_hash: str) -> "ApiClientQuerySet":
        """Clients whose current key, or previous key still in its grace period, has this hash."""
        grace = Q(previous_key_hash=key_hash, previous_key_expires_at__gt=timezone.now())
        return self.filter(Q(key_hash=key_hash) | grace)


class ApiClient(models.Model):
    name = models.CharField(max_length=150, unique=True)
    client_type = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(
        max_length=16, editable=False, help_text="Start of the key, to recognise it."
    )
    previous_key_hash = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False
    )
    previous_key_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    active = models.BooleanField(default=True, db_index=True)
    description = models.TextField(blank=True, default="")
    groups = models.ManyToManyField(Group, blank=True, related_name="api_clients")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
