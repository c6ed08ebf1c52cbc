import django_filters

from clients.models import ApiClient


class ApiClientFilter(django_filters.FilterSet):
    class Meta:
        model = ApiClient
        fields = ["active", "client_type", "name"]
