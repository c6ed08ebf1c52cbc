from datetime import UTC, datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from valhalla_ops.models import SystemLog

MAX_ID = 2**63 - 1  # the largest BigAutoField: a bigger number is a 400, not a database error


class IdFilter(django_filters.Filter):
    """Filter by a related row's id: a whole number in the id range, else a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC before it reaches the database.

    PostgreSQL refuses offsets beyond ±15:59 ("+16:12" parses in Python): in UTC every valid
    input is a valid timestamp, and one that cannot be expressed in UTC is a 400.
    """

    def to_python(self, value: object) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError(
                "Enter a date-time between the years 1 and 9999.", code="invalid"
            ) from None


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """The filter every app uses for `…_after`/`…_before` query parameters."""

    field_class = UtcIsoDateTimeField


class SystemLogFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor", lookup_expr="iexact")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SystemLog
        fields = [
            "category",
            "level",
            "action",
            "actor",
            "actor_type",
            "target_type",
            "target_id",
            "request_id",
        ]
