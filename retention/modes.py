"""Whether purges may run: only while the system is in normal (maintenance) mode.

The mode comes from the maintenance app's cached reader; a mode that cannot be read counts
as "not normal", so purges wait rather than delete blind.
"""

import logging

from maintenance.state import current_mode as maintenance_mode

logger = logging.getLogger(__name__)

NORMAL = "normal"
UNKNOWN = "unknown"
_last_logged: list[str] = [NORMAL]  # the mode last reported, to log each change once


def current_mode() -> str:
    try:
        return str(maintenance_mode())
    except Exception:  # StateUnavailable, or anything else: fail closed, purges wait
        logger.warning("retention: cannot read the maintenance mode", exc_info=True)
        return UNKNOWN


def purges_allowed() -> bool:
    """True in normal mode; logs once when purges pause and once when they resume."""
    mode = current_mode()
    if mode != _last_logged[0]:
        if mode == NORMAL:
            logger.info("retention purges resume: the system is back in normal mode")
        else:
            logger.info("retention purges paused while the system is in %s mode", mode)
        _last_logged[0] = mode
    return mode == NORMAL
