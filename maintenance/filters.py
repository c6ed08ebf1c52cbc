import django_filters

from maintenance.models import MaintenanceWindow
from valhalla_ops.filters import DateTimeFilter


class MaintenanceWindowFilter(django_filters.FilterSet):
    starts_after = DateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = DateTimeFilter(field_name="starts_at", lookup_expr="lt")
    ends_after = DateTimeFilter(field_name="ends_at", lookup_expr="gt")

    class Meta:
        model = MaintenanceWindow
        fields = ["active", "mode"]
