"""The gateway's own inputs and outputs for the main loop: mains-power sense pin, battery ADC, buzzer,
LED and the silence button (an interrupt latches a press, so the loop may sleep between samples)."""

from gateway_firmware.senml import UNKNOWN


class Board:
    def __init__(self, machine, cfg):
        Pin = machine.Pin
        self.mains_pin = Pin(cfg["mains_pin"], Pin.IN) if cfg.get("mains_pin") is not None else None
        self.mains_on_level = cfg.get("mains_on_level", 1)
        self.adc = machine.ADC(Pin(cfg["battery_pin"])) if cfg.get("battery_pin") is not None else None
        self.bat_divider = cfg.get("battery_divider", 2)
        self.bat_empty_mv = cfg.get("battery_empty_mv", 3300)
        self.bat_full_mv = cfg.get("battery_full_mv", 4200)
        self.vref_mv = cfg.get("adc_full_scale_mv", 3300)
        self.buzzer = Pin(cfg["buzzer_pin"], Pin.OUT, value=0)
        self.led = Pin(cfg["led_pin"], Pin.OUT, value=0)
        self.pressed = False
        self.button = Pin(cfg["button_pin"], Pin.IN, Pin.PULL_UP)
        self.button.irq(trigger=Pin.IRQ_FALLING, handler=self._press)

    def _press(self, _pin):
        self.pressed = True

    def take_press(self):
        p = self.pressed
        self.pressed = False
        return p

    def mains(self):
        """1 mains on, 0 off, UNKNOWN without a sense pin."""
        if self.mains_pin is None:
            return UNKNOWN
        return 1 if self.mains_pin.value() == self.mains_on_level else 0

    def battery_pct(self):
        if self.adc is None:
            return UNKNOWN
        mv = self.adc.read_u16() * self.vref_mv * self.bat_divider // 65535
        pct = (mv - self.bat_empty_mv) * 100 // (self.bat_full_mv - self.bat_empty_mv)
        return max(0, min(100, pct))

    def outputs(self, buzzer, led):
        self.buzzer.value(1 if buzzer else 0)
        self.led.value(1 if led else 0)
