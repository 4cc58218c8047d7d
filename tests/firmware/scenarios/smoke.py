import fwsim
import sim

p = fwsim.params()
w = sim.start(p["start"])
w.rtc_set = True
fwsim.install_probes(w, [lambda t: 4.5, lambda t: 5.25, lambda t: -18.0, lambda t: 3.0])
w.adc[35] = 40000
gw = fwsim.boot(fwsim.base_config())
gw.run(until_ms=5 * 60000)
fwsim.report_delivered(w)
fwsim.emit("done", buffered=len(gw.store))
