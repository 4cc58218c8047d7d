"""Shim of MicroPython's ``machine`` for the firmware tests: pins, ADC, I²C, watchdog on ``sim.WORLD``."""

import sim


class Reset(Exception):
    pass


def _id(pin):
    return pin.id if isinstance(pin, Pin) else pin


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = _id(id)
        self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        w = sim.world()
        if v is None:
            if self.mode == Pin.OUT:
                return w.outputs.get(self.id, 0)
            return w.inputs.get(self.id, 1)
        w.outputs[self.id] = 1 if v else 0

    def irq(self, trigger=None, handler=None):
        sim.world().irqs[self.id] = handler


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.id = _id(pin)

    def read_u16(self):
        return sim.world().adc.get(self.id, 0)


class I2C:
    def __init__(self, id, sda=None, scl=None, freq=400000):
        self.id = id

    def writeto(self, addr, buf):
        if addr not in sim.world().i2c:
            raise OSError(19)  # ENODEV: no ACK
        return len(buf)

    def readfrom(self, addr, n):
        w = sim.world()
        dev = w.i2c.get(addr)
        if dev is None:
            raise OSError(19)
        return dev(w.now_s())[:n]


class WDT:
    def __init__(self, id=0, timeout=5000):
        w = sim.world()
        w.wdt_timeout_ms = timeout
        w.wdt_last_ms = w.t_ms

    def feed(self):
        w = sim.world()
        w.wdt_last_ms = w.t_ms


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset():
    raise Reset()
