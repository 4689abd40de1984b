import logging

import pytest

from shop.audit import Heartbeat, log, start_auditing


def test_audit_handler_removed_is_clean():
    trail = start_auditing()
    log.warning("refund issued")
    log.removeHandler(trail)


def test_audit_handler_left_on_logger_leaks():
    trail = start_auditing()
    log.warning("refund issued")
    assert len(trail.records) == 1


def test_heartbeat_thread_never_joined_leaks():
    Heartbeat().start()


def test_heartbeat_closed_is_clean():
    beat = Heartbeat()
    beat.start()
    beat.close()


@pytest.mark.allow_leaks(reason="the audit trail is meant to outlive this test")
def test_known_leak_is_allowed():
    start_auditing()


def test_logging_a_message_is_clean(caplog):
    logging.getLogger("shop.checkout").info("checkout %s", 42)
