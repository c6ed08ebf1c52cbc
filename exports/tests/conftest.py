import pytest

from exports.models import ExportJob


@pytest.fixture
def make_job(db):
    """make(**fields) -> ExportJob, straight into the table (no service, no audit row)."""

    def make(**overrides) -> ExportJob:
        fields = {
            "job_type": "audit_log_export",
            "filter_params": {"format": "csv"},
            "requested_by": "admin@example.com",
        } | overrides
        return ExportJob.objects.create(**fields)

    return make


@pytest.fixture
def media(settings, tmp_path):
    """Export files go to a fresh directory."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
