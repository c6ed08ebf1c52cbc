import django_filters

from retention.models import DataRetentionPolicy


class DataRetentionPolicyFilter(django_filters.FilterSet):
    class Meta:
        model = DataRetentionPolicy
        fields = ["enabled", "category"]
