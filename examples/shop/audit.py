from __future__ import annotations

import logging
import threading

log = logging.getLogger("shop.audit")


class AuditTrail(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def start_auditing() -> AuditTrail:
    """Leak unless the caller removes the handler again."""
    trail = AuditTrail()
    log.addHandler(trail)
    return trail


class Heartbeat:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait, args=(30,), name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
