"""limit/offset pagination, as the seeds' lists use."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000


class SnapshotPagination(LimitOffsetPagination):
    default_limit = 200
