"""Entry point on the board: copy to the root of the filesystem as ``main.py`` (see docs/firmware.md).
Brings up Wi-Fi (or leaves the link to a modem that is already up), arms the watchdog and runs the
gateway loop for ever; anything unexpected resets the board, and the buffer survives on flash."""

import time

import ds18x20
import machine
import network
import ntptime
import onewire
from umqtt.simple import MQTTClient

from gateway_firmware import config, hardware
from gateway_firmware.clock import Clock
from gateway_firmware.gateway import Gateway, log


def wifi(cfg):
    if not cfg["wifi_ssid"]:
        return None
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(cfg["wifi_ssid"], cfg["wifi_password"])  # connects in the background
    return wlan


def main():
    cfg = config.load()
    wdt = machine.WDT(timeout=cfg["watchdog_ms"])
    hw = hardware.build(cfg, machine, onewire, ds18x20, ntptime, MQTTClient, Clock(), wifi(cfg), wdt)
    gw = Gateway(cfg, hw)
    while True:
        try:
            gw.run()
        except Exception as e:  # never stop measuring: log, then reset (the buffer is on flash)
            log("fatal", repr(e))
            time.sleep_ms(1000)
            machine.reset()


main()
