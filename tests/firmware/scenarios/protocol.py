# Every kind of record the firmware sends, under MicroPython: temperatures of both drivers (including
# negative ones below 1 °C and a probe that cannot be read), mains, battery, status and last will.
import fwsim
import sim

p = fwsim.params()
w = sim.start(p["start"])
w.rtc_set = True
fwsim.install_probes(w, [lambda t: 4.56, lambda t: -0.05, lambda t: -18.25, lambda t: 85.0])
del w.probe_temps[fwsim.ROMS[1]]  # p2 stops answering after its scan: a read error
# SHT3x at 0x44: raw 0x6666 -> -45 + 175 * 26214 / 65535 = 25.00 °C
w.i2c[0x44] = lambda t: bytes([0x66, 0x66, 0x93, 0x80, 0x00, 0xA2])
w.i2c[0x45] = lambda t: bytes([0x66, 0x66, 0x00, 0x80, 0x00, 0xA2])  # a corrupted CRC
w.adc[35] = 40000  # 40000 * 3.3 V * 2 / 65535 = 4.03 V: 80 %
cfg = fwsim.base_config()
cfg["probes"].append({"id": "amb", "driver": "sht3x", "sda": 21, "scl": 22})
cfg["probes"].append({"id": "amb2", "driver": "sht3x", "sda": 21, "scl": 22, "addr": 0x45})
cfg["probes"].append({"id": "amb3", "driver": "sht3x", "sda": 21, "scl": 22, "addr": 0x46})  # absent
gw = fwsim.boot(cfg)
w.inputs[34] = 1
gw.run(until_ms=60000)
w.inputs[34] = 0  # mains off
gw.run(until_ms=2 * 60000 + 1)
w.set_link(False)  # the link breaks: the broker publishes the will
gw.run(until_ms=3 * 60000 + 1)
fwsim.report_delivered(w)
fwsim.emit("done", connects=w.connects)
