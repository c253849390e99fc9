"""First module the solver pool's forkserver imports: it exits as soon as the service does.

The forkserver looks for its parent's death only in its main loop, which it enters after
importing the planning core (numpy, osmnx, vroom: seconds on a busy machine). A service that
dies during those seconds would leave it running until the imports end. Imported first (see
``app.planning.pool._context``), this module starts a daemon thread in the forkserver that
polls the parent's pid and ends the process the moment the parent is gone; the solver workers,
children of the forkserver, die with it (``PR_SET_PDEATHSIG``, docs/decisions/jobs-no-orphans.md).

Only the forkserver imports it (its preload list); anywhere else importing it does nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: Seconds between two looks at the parent.
POLL_S = 0.1


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(0)


def _in_forkserver() -> bool:
    # The forkserver runs as ``python -c "from multiprocessing.forkserver import main; ..."``.
    return sys.argv == ["-c"] and "multiprocessing.forkserver" in sys.modules


if _in_forkserver():
    threading.Thread(target=_watch, args=(os.getppid(),), name="service-watch", daemon=True).start()
