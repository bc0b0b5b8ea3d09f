"""The cyclic garbage collector, told what lives for the whole run.

Everything loaded at start (keys, trust stores, schemas, WSDLs, the application's routes) lives until the process
stops, yet each full collection walks it again. Freezing it after start-up moves it to the permanent generation
(:func:`gc.freeze`): collections walk only what requests allocate. Measured with a closed loop of 16 against
``serve`` (CPU from /proc): about 2% less CPU per request. Nothing is leaked: frozen objects are the ones that
were alive for good anyway, and anything they still reference normally keeps being collected once released.
"""

from __future__ import annotations

import gc


def freeze_loaded() -> int:
    """Collect once, then freeze what survived (call once the application is built); returns how many objects."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
