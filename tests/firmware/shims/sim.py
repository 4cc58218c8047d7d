"""The simulated world the firmware runs in under the tests (MicroPython code): true time, the board's
RTC and monotonic clock, the network link, an MQTT broker that records what the gateway published,
probes, pins, ADC, I²C devices, watchdog. The shim modules (machine, network, ntptime, onewire,
ds18x20, umqtt.simple) all act on the one ``WORLD``; a scenario script sets it up and drives it.

A reboot keeps the world (time goes on, /flash keeps its files) and throws the firmware's objects away;
a power cut also clears the RTC, as on an ESP32 without a backup battery.
"""


class World:
    def __init__(self, start_s):
        self.t_ms = int(start_s * 1000)  # true time
        self.boot_ms = self.t_ms
        self.rtc_set = False  # unset: the RTC counts from 1970 at boot
        self.link = True  # network up
        self.ntp_ok = True
        self.broker_up = True
        self.lose_puback = 0  # the next N telemetry publishes reach the broker, their PUBACK is lost
        self.delivered = []  # (t_s, topic, payload, retain) what the broker accepted, in order
        self.retained = {}
        self.connects = []  # dicts: client_id, user, will, t_s
        self.session = None  # the connected client
        self.events = []  # (t_ms, fn), fired by sleep in time order
        self.probe_temps = {}  # rom (bytes) -> fn(t_s) -> °C, or raises OSError
        self.roms = {}  # 1-Wire pin -> [rom]
        self.inputs = {}  # pin -> level
        self.outputs = {}  # pin -> level
        self.adc = {}  # pin -> u16
        self.irqs = {}  # pin -> handler
        self.i2c = {}  # addr -> fn(t_s) -> 6 bytes
        self.wdt_timeout_ms = None
        self.wdt_last_ms = None
        self.wdt_expired = 0
        self.log = []

    # time
    def now_s(self):
        return self.t_ms / 1000

    def mono_ms(self):
        return self.t_ms - self.boot_ms

    def rtc(self):
        if self.rtc_set:
            return self.t_ms // 1000
        return (self.t_ms - self.boot_ms) // 1000

    def at(self, t_s, fn):
        when = int(t_s * 1000)
        i = len(self.events)
        while i and self.events[i - 1][0] > when:  # insertion keeps equal times in order of arrival
            i -= 1
        self.events.insert(i, (when, fn))

    def advance(self, ms):
        end = self.t_ms + max(0, int(ms))
        while self.events and self.events[0][0] <= end:
            when, fn = self.events.pop(0)
            self.t_ms = max(self.t_ms, when)
            fn()
        self.t_ms = end
        if self.wdt_timeout_ms is not None and self.t_ms - self.wdt_last_ms > self.wdt_timeout_ms:
            self.wdt_expired += 1

    def reboot(self, power_cut=False):
        self.boot_ms = self.t_ms
        if power_cut:
            self.rtc_set = False
        self.broker_drop()
        self.irqs = {}
        self.wdt_timeout_ms = None

    # network and broker
    def broker_drop(self):
        """The connection breaks without a DISCONNECT: the broker publishes the will."""
        s = self.session
        if s is not None:
            self.session = None
            s.alive = False
            if s.will is not None:
                self.accept(s.will[0], s.will[1], s.will[2])

    def set_link(self, up):
        self.link = up
        if not up:
            self.broker_drop()

    def accept(self, topic, payload, retain):
        if isinstance(payload, str):
            payload = payload.encode()
        self.delivered.append((self.now_s(), topic, payload, retain))
        if retain:
            self.retained[topic] = payload
        s = self.session
        if s is not None and s.subscribed(topic):
            s.inbox.append((topic, payload))

    def server_publish(self, topic, payload, retain=False):
        """What a server (config, alerts) publishes to the broker."""
        if isinstance(payload, str):
            payload = payload.encode()
        if retain:
            self.retained[topic] = payload
        s = self.session
        if s is not None and s.subscribed(topic):
            s.inbox.append((topic, payload))

    # pins
    def press(self, pin):
        self.inputs[pin] = 0
        h = self.irqs.get(pin)
        if h is not None:
            h(pin)
        self.inputs[pin] = 1


WORLD = None


def world():
    if WORLD is None:
        raise RuntimeError("sim.WORLD is not set up: the scenario must call sim.start(...)")
    return WORLD


def start(start_s):
    global WORLD
    WORLD = World(start_s)
    return WORLD


class SimClock:
    """The firmware's clock (``gateway_firmware.clock.Clock`` interface) on the simulated world."""

    def mono_ms(self):
        return world().mono_ms()

    def epoch(self):
        return world().rtc()

    def sleep_ms(self, ms):
        world().advance(ms)
