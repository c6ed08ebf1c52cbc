from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from exports import services
from exports.filters import ExportJobFilter
from exports.models import ExportJob
from exports.serializers import (
    ExportJobCreateSerializer,
    ExportJobSerializer,
    ExportJobStatusSerializer,
    ExportJobTypeSerializer,
)
from exports.writers import CONTENT_TYPES
from valhalla_ops import registry
from valhalla_ops.exceptions import error_body
from valhalla_ops.idempotency import idempotent


class ExportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ExportJob.objects.all()
    serializer_class = ExportJobSerializer
    filterset_class = ExportJobFilter
    action_perms = {"set_status": ["exports.change_exportjob"]}

    @extend_schema(request=ExportJobCreateSerializer, responses={201: ExportJobSerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = ExportJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.create_export(actor=request.user, **serializer.validated_data)
        return Response(ExportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ExportJobStatusSerializer, responses=ExportJobSerializer)
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request: Request, pk: str | None = None) -> Response:
        serializer = ExportJobStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.set_export_status(
            actor=request.user, job=self.get_object(), **serializer.validated_data
        )
        return Response(ExportJobSerializer(job).data)

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="Unknown job, or no file yet (not completed)."),
            409: OpenApiResponse(
                description="Completed, but stored elsewhere: `storage_url` says where."
            ),
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse | Response:
        """The job's file, once the runner has completed it."""
        job = self.get_object()
        if job.status == ExportJob.Status.COMPLETED and not job.file and job.storage_url:
            services.check_can_download(actor=request.user, job=job)
            return stored_elsewhere(job)
        if job.status != ExportJob.Status.COMPLETED or not job.file:
            raise Http404("This job has no file (yet).")
        services.check_can_download(actor=request.user, job=job)
        try:
            handle = job.file.open("rb")
        except FileNotFoundError:
            raise Http404("The export file is gone from storage.") from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"export-{job.pk}.{job.file_format}",
            content_type=CONTENT_TYPES.get(job.file_format, "application/octet-stream"),
        )

    @extend_schema(responses=ExportJobTypeSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def types(self, request: Request) -> Response:
        """The registered job types and the columns each exports."""
        types = [job_type for _name, job_type in registry.export_job_types.items()]
        return Response(ExportJobTypeSerializer(types, many=True).data)


def stored_elsewhere(job: ExportJob) -> Response:
    """A job completed by an external runner: its file is at `storage_url`, not here."""
    detail = (
        f"Export #{job.pk} is stored elsewhere, not on this server: "
        f"fetch it from {job.storage_url}."
    )
    body = error_body(status.HTTP_409_CONFLICT, detail, storage_url=job.storage_url)
    return Response(body, status=status.HTTP_409_CONFLICT)
