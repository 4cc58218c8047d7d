# The local alarm on the simulated board: probe p1 follows params["p1"] (a list of [from_minute, °C]),
# the silence button is pressed at params["presses"] (minutes), the server publishes params["alerts"]
# ([minute, event]) on the clinic's alerts topic. Reports buzzer and LED every minute at :30.
import json

import fwsim
import sim

p = fwsim.params()
w = sim.start(p["start"])
w.rtc_set = True
T0 = w.now_s()
plan = p["p1"]


def p1(t):
    minute = (t - T0) / 60
    c = plan[0][1]
    for start, value in plan:
        if minute >= start:
            c = value
    return c


fwsim.install_probes(w, [p1])
w.inputs[34] = 1
for m in p["presses"]:
    w.at(T0 + m * 60, lambda: w.press(0))
for m, event in p["alerts"]:
    w.at(T0 + m * 60, lambda event=event: w.server_publish("cw/v1/qingshui-thc/alerts", json.dumps(event)))
seen = []
for m in range(p["minutes"]):
    w.at(T0 + m * 60 + 30, lambda m=m: seen.append([m, w.outputs.get(25, 0), w.outputs.get(2, 0)]))
gw = fwsim.boot(fwsim.base_config(n_probes=1, tick_ms=5000))
gw.run(until_ms=p["minutes"] * 60000)
fwsim.emit("done", outputs=seen, firing=gw.alarm.firing())
