"""Shim of MicroPython's ``onewire``: a bus on a pin of the simulated board."""


class OneWireError(Exception):
    pass


class OneWire:
    def __init__(self, pin):
        self.pin = pin.id if hasattr(pin, "id") else pin
