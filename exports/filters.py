import django_filters

from exports.models import ExportJob
from valhalla_ops.filters import DateTimeFilter


class ExportJobFilter(django_filters.FilterSet):
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ExportJob
        fields = ["status", "job_type", "requested_by"]
