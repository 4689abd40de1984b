from __future__ import annotations

from typing import Callable


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.remove(listener)

    def publish(self, event: str) -> None:
        for listener in list(self._listeners):
            listener(event)


#: The application-wide bus: lives as long as the process.
bus = EventBus()


class Cart:
    def __init__(self) -> None:
        self.events: list[str] = []
        bus.subscribe(self.on_event)  # Leak unless close() is called.

    def on_event(self, event: str) -> None:
        self.events.append(event)

    def close(self) -> None:
        bus.unsubscribe(self.on_event)
