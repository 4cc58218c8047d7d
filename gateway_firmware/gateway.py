"""The gateway's main loop, one ``step`` at a time: sample on the interval, buffer on flash, sync the
clock, keep the uplink up, drain the buffer oldest first, run the local alarm, feed the watchdog.
All hardware and time come in as objects (``hw``), so the same code runs on the board (``main.py``)
and under the tests' simulated board.

``hw`` has: ``clock`` (``mono_ms``, ``epoch``, ``sleep_ms``), ``ntptime``, ``mqtt`` (the
``umqtt.simple.MQTTClient`` class), ``board`` (``board.Board``), ``probes`` (list of (id, driver)),
``buses`` (1-Wire buses to convert before reading), ``wlan`` (``network.WLAN`` or None), ``wdt``.
"""

import json

from gateway_firmware import config as configmod
from gateway_firmware import senml
from gateway_firmware.alarm import LocalAlarm
from gateway_firmware.probes import CONVERT_MS
from gateway_firmware.store import RingStore
from gateway_firmware.timekeeper import TimeKeeper
from gateway_firmware.uplink import Uplink


def log(*args):
    print("[gw]", *args)


class Gateway:
    def __init__(self, cfg, hw, flash=""):
        self.cfg = cfg
        self.hw = hw
        self.flash = flash
        self.names = [p[0] for p in hw.probes]
        self.store = RingStore(flash + "buffer.bin", cfg["buffer_slots"])
        self.time = TimeKeeper(hw.clock, hw.ntptime, flash + "time.json")
        self.alarm = LocalAlarm(cfg)
        self.uplink = Uplink(hw.mqtt, cfg, self._message)
        self.next_sample_ms = 0
        self.next_wifi_ms = 30000
        self.samples = 0
        for bus in hw.buses:
            bus.scan()
        log("boot", self.time.boot, "buffered", len(self.store), "dropped", self.store.dropped)

    # ------------------------------------------------------------ incoming messages

    def _message(self, topic, msg):
        try:
            doc = json.loads(msg)
        except ValueError:
            log("ignored a message that is not JSON on", topic)
            return
        if topic == self.uplink.config_topic:
            changed = configmod.apply_server(self.cfg, doc)
            if changed:
                configmod.save_server(doc, self.flash + "server_config.json")
                self.alarm.reconfigure(self.cfg)
                log("config", ",".join(changed), "interval", self.cfg["interval_s"])
        elif topic == self.uplink.alerts_topic:
            self.alarm.server_alert(doc)

    # ------------------------------------------------------------ sampling

    def sample(self):
        hw = self.hw
        if hw.buses:
            for bus in hw.buses:
                bus.convert()
            hw.clock.sleep_ms(CONVERT_MS)
        dated, t = self.time.stamp()
        temps = [driver.read() for _, driver in hw.probes]
        mains = hw.board.mains()
        battery = hw.board.battery_pct()
        self.store.append(dated, self.time.boot, t, temps, mains, battery)
        self.samples += 1
        mono_s = self.time.mono_s()
        for i, c in enumerate(temps):
            self.alarm.reading(self.names[i], mono_s, c)

    # ------------------------------------------------------------ uplink

    def online(self):
        wlan = self.hw.wlan
        if wlan is None:
            return True  # a modem brings the link up on its own
        if wlan.isconnected():
            return True
        now_ms = self.hw.clock.mono_ms()
        if now_ms >= self.next_wifi_ms:  # ask again every 30 s; the call returns at once
            self.next_wifi_ms = now_ms + 30000
            try:
                wlan.connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"])
            except OSError as e:
                log("wifi", repr(e))
        return False

    def drain(self, now_ms):
        """Publish buffered samples oldest first, ≤ ``max_records`` records a message; a sample leaves
        the buffer only after the broker's PUBACK. Stops at the first sample whose time is not known yet."""
        limit = self.cfg["max_records"]
        while len(self.store) and self.uplink.connected():
            batch = []
            n = 0
            skip = 0
            taken = 0
            for dated, boot, t, temps, mains, battery in self.store.peek(limit):
                s = (t, temps, mains, battery)
                if self.time.unknowable(dated, boot):
                    if batch:
                        break  # send what precedes it first, then drop it in the next round
                    skip += 1
                    taken += 1
                    continue
                when = self.time.resolve(dated, boot, t)
                if when is None:
                    break  # this boot, before the first sync: wait for the time
                r = senml.record_count(s)
                if n + r > limit and batch:
                    break
                batch.append((when, temps, mains, battery))
                n += r
                taken += 1
            if n and not self.uplink.publish(now_ms, senml.encode(self.cfg["device"], batch, self.names)):
                return
            if not taken:
                return
            if skip:
                log("dropped", skip, "readings of a boot that ended before the time was known")
            self.store.remove(taken, undated=skip)

    def step(self):
        """One pass of the loop; returns the milliseconds to sleep before the next."""
        hw = self.hw
        hw.wdt.feed()
        now_ms = hw.clock.mono_ms()
        if now_ms >= self.next_sample_ms:
            self.sample()
            self.next_sample_ms = (
                max(self.next_sample_ms + self.cfg["interval_s"] * 1000, now_ms)
                if self.next_sample_ms
                else now_ms + self.cfg["interval_s"] * 1000
            )
        online = self.online()
        self.time.maybe_sync(online)
        now_ms = hw.clock.mono_ms()
        if online and not self.uplink.connected():
            dropped = self.store.unreported_drops()
            if self.uplink.connect(now_ms, self.time.now(), dropped, len(self.store)):
                self.store.mark_reported(dropped)
        if self.uplink.poll(now_ms):
            self.drain(now_ms)
            if self.store.unreported_drops():
                self._report_dropped(now_ms)
        mono_s = self.time.mono_s()
        if hw.board.take_press():
            self.alarm.silence(mono_s)
        buzzer, led = self.alarm.outputs(mono_s)
        hw.board.outputs(buzzer, led)
        hw.wdt.feed()
        return max(0, min(self.cfg["tick_ms"], self.next_sample_ms - hw.clock.mono_ms()))

    def _report_dropped(self, now_ms):
        dropped = self.store.dropped
        if self.uplink.status(now_ms, self.time.now(), dropped):
            self.store.mark_reported(dropped)

    def run(self, until_ms=None):
        while until_ms is None or self.hw.clock.mono_ms() < until_ms:
            self.hw.clock.sleep_ms(self.step())
