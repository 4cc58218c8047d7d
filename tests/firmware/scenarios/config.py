# The retained config on cw/v1/{clinic}/{device}/config sets the sampling interval; the gateway keeps
# it on flash, so after a reboot without network it samples at the server's interval, not the default.
import json

import fwsim
import sim

p = fwsim.params()
w = sim.start(p["start"])
w.rtc_set = True
T0 = w.now_s()
reads = []
fwsim.install_probes(w, [lambda t: reads.append(t) or 5.0])
w.server_publish("cw/v1/qingshui-thc/qingshui-gw1/config", json.dumps(p["config"]), retain=True)
gw = fwsim.boot(fwsim.base_config(n_probes=1, tick_ms=1000))
gw.run(until_ms=60 * 60000)
w.set_link(False)
w.reboot()
gw = fwsim.boot(fwsim.base_config(n_probes=1, tick_ms=1000))
gw.run(until_ms=60 * 60000)
fwsim.emit("done", reads=[t - T0 for t in reads], wdt_expired=w.wdt_expired)
