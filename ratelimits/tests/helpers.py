"""Request helpers shared by the middleware tests."""

from rest_framework.test import APIClient

URL = "/system/ratelimits/rules"


def get(client: APIClient, path: str = URL, ip: str = "127.0.0.1", **extra):
    return client.get(path, REMOTE_ADDR=ip, **extra)


def statuses(client: APIClient, times: int, **kwargs) -> list[int]:
    return [get(client, **kwargs).status_code for _ in range(times)]
