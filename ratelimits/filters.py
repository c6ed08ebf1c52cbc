import django_filters
from django.db.models import F, Q, QuerySet

from ratelimits.models import RateLimitRule, RateLimitSnapshot
from valhalla_ops.filters import DateTimeFilter, IdFilter


class RateLimitRuleFilter(django_filters.FilterSet):
    class Meta:
        model = RateLimitRule
        fields = ["scope", "key", "enabled"]


class RateLimitSnapshotFilter(django_filters.FilterSet):
    rule = IdFilter(field_name="rule_id")
    exceeded = django_filters.BooleanFilter(method="filter_exceeded")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = RateLimitSnapshot
        fields = ["scope", "key", "rule", "exceeded", "created_after", "created_before"]

    def filter_exceeded(
        self, queryset: QuerySet[RateLimitSnapshot], name: str, value: bool | None
    ) -> QuerySet[RateLimitSnapshot]:
        if value is None:
            return queryset
        over = Q(current_count__gt=F("max_requests"))
        return queryset.filter(over if value else ~over)
