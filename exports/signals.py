"""Files follow their job: deleting a job (by hand or by the retention purger) deletes its file."""

import logging

from django.db import transaction

from exports.models import ExportJob

logger = logging.getLogger(__name__)


def delete_export_file(sender: type[ExportJob], instance: ExportJob, **kwargs: object) -> None:
    name, storage = instance.file.name, instance.file.storage
    if not name:
        return

    def delete() -> None:
        try:
            storage.delete(name)
        except OSError:  # a leftover file is harmless; a crash in on_commit is not
            logger.warning("could not delete export file %s", name, exc_info=True)

    transaction.on_commit(delete)
