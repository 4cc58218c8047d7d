"""Temperature probe drivers behind one interface for the sampler: ``read()`` returns integer hundredths
of a degree Celsius, or ``ERR`` when the probe could not be read (``error`` then says why).

- ``DS18B20``: 1-Wire (``onewire`` + ``ds18x20``); all probes of one bus convert together
  (``Bus.convert`` then 750 ms), so a sample of 8 probes costs one conversion time, not eight.
  The chip's own codes (85.0 after a power-on reset) are passed on as read: the server flags them.
- ``SHT3x``: I²C (address 0x44), single-shot high repeatability, CRC-checked.
"""

from gateway_firmware.senml import ERR

CONVERT_MS = 750


def _centi(celsius):
    return int(round(celsius * 100))


class Bus:
    """One 1-Wire bus with its DS18B20 probes."""

    def __init__(self, machine, onewire, ds18x20, pin):
        self.ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(pin)))
        self.roms = []
        self.error = None

    def scan(self):
        try:
            self.roms = self.ds.scan()
        except OSError as e:
            self.roms = []
            self.error = "scan: %s" % e
        return self.roms

    def convert(self):
        try:
            self.ds.convert_temp()
            self.error = None
            return True
        except OSError as e:
            self.error = "convert: %s" % e
            return False


class DS18B20:
    def __init__(self, bus, rom=None, index=0):
        self.bus = bus
        self.rom = rom  # bytes, or None: the ``index``-th probe the bus scan finds
        self.index = index
        self.error = None

    def _rom(self):
        if self.rom is not None:
            return self.rom
        if self.index < len(self.bus.roms):
            return self.bus.roms[self.index]
        return None

    def read(self):
        rom = self._rom()
        if rom is None:
            self.error = "no device"
            return ERR
        if self.bus.error:
            self.error = self.bus.error
            return ERR
        try:
            c = self.bus.ds.read_temp(rom)
        except Exception as e:  # ds18x20 raises a bare Exception on a CRC error
            self.error = "read: %s" % e
            return ERR
        if c is None:
            self.error = "no data"
            return ERR
        self.error = None
        return _centi(c)


def crc8(data):
    """Sensirion CRC-8 (polynomial 0x31, init 0xFF)."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class SHT3x:
    ADDR = 0x44
    MEASURE = b"\x24\x00"  # single shot, high repeatability, no clock stretching

    def __init__(self, i2c, sleep_ms, addr=ADDR):
        self.i2c = i2c
        self.sleep_ms = sleep_ms
        self.addr = addr
        self.error = None

    def read(self):
        try:
            self.i2c.writeto(self.addr, self.MEASURE)
            self.sleep_ms(16)
            d = self.i2c.readfrom(self.addr, 6)
        except OSError as e:
            self.error = "i2c: %s" % e
            return ERR
        if crc8(d[0:2]) != d[2]:
            self.error = "crc"
            return ERR
        raw = (d[0] << 8) | d[1]
        self.error = None
        return -4500 + (17500 * raw + 32767) // 65535
