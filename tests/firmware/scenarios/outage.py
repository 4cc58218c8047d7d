# An outage: ``online_min`` minutes online, then ``offline_min`` minutes without network (4 probes,
# 60 s), then ``after_min`` minutes online again. ``reboots``: [minute, power_cut] — a watchdog reset
# keeps the RTC; a power cut loses it, so readings until the next NTP sync carry boot-relative times.
# Reports every reading's true time (``truth``) and everything the broker accepted.
import fwsim
import sim

p = fwsim.params()
w = sim.start(p["start"])
w.rtc_set = True
T0 = w.now_s()
reads = []


def probe(k):
    def read(t):
        if k == 0:
            reads.append(t)
        return 4.0 + k + (len(reads) % 100) / 100  # a different value every sample

    return read


fwsim.install_probes(w, [probe(k) for k in range(4)])
w.adc[35] = 40000
w.inputs[34] = 1
cfg = fwsim.base_config()
if p.get("slots"):
    cfg["buffer_slots"] = p["slots"]
if p.get("device"):
    cfg["device"] = p["device"]

online_min = p["online_min"]
offline_min = p["offline_min"]
w.at(T0 + online_min * 60 - 1, lambda: w.set_link(False))


def link_back():
    w.set_link(True)
    w.lose_puback = p.get("lose_puback", 0)  # the drain's first PUBACKs get lost


w.at(T0 + (online_min + offline_min) * 60 - 1, link_back)

gw = fwsim.boot(cfg)
buffered_at_reboot = []
for minute, power_cut in p["reboots"]:
    gw.run(until_ms=int((T0 + minute * 60 - w.now_s()) * 1000) + gw.hw.clock.mono_ms())
    buffered_at_reboot.append(len(gw.store))
    w.reboot(power_cut=power_cut)
    gw = fwsim.boot(cfg)  # a new firmware instance on the same flash
end = T0 + (online_min + offline_min + p["after_min"]) * 60
gw.run(until_ms=int((end - w.now_s()) * 1000) + gw.hw.clock.mono_ms())
fwsim.report_delivered(w)
fwsim.emit(
    "done",
    truth=reads,
    buffered_at_reboot=buffered_at_reboot,
    buffered=len(gw.store),
    dropped=gw.store.dropped,
    undated=gw.store.undated,
    wdt_expired=w.wdt_expired,
)
