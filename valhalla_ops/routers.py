"""A router that accepts every path with and without its trailing slash."""

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """The seeds use both `/x` and `/x/`; a POST must never be redirected."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
