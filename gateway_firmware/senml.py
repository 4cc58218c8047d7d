"""SenML JSON (RFC 8428) encoding of buffered samples as protocol v1 telemetry (DESIGN §3), for the uplink.

Temperatures travel as integer hundredths of a degree from the driver to the wire, so no float is ever
formatted (an ESP32's single-precision floats would print 4.6 as 4.599999). A probe that could not be
read is sent as -127.0 °C, the DS18B20 "not connected" code: the server keeps it as a probe fault, so a
broken probe shows instead of vanishing.
"""

ERR = -32768  # a probe read error, as stored (integer hundredths)
FAULT_CENTI = -12700  # what a read error is sent as: -127.0 °C
UNKNOWN = 255  # mains / battery not measured


def centi_text(c):
    """Integer hundredths of a degree as a JSON number: -5 -> "-0.05", 460 -> "4.60"."""
    if c == ERR:
        c = FAULT_CENTI
    sign = "-" if c < 0 else ""
    c = -c if c < 0 else c
    return "%s%d.%02d" % (sign, c // 100, c % 100)


def record_count(sample):
    """How many SenML records one sample ``(t, temps, mains, battery)`` becomes."""
    return len(sample[1]) + (sample[2] != UNKNOWN) + (sample[3] != UNKNOWN)


def encode(device, samples, names):
    """One SenML pack for ``samples`` (oldest first, absolute epoch seconds): ``bn`` and ``bt`` on the
    first record, then times relative to ``bt``. ``names[i]`` is the probe id of temperature ``i``.
    Built in one ``bytearray`` (a 500-record message is ~20 KB; no list of record strings is kept)."""
    out = bytearray(b"[")
    bt = None
    for t, temps, mains, battery in samples:
        if bt is None:
            bt = t
        rel = t - bt
        tail = ',"t":%d}' % rel if rel else "}"
        for i in range(len(temps)):
            _add(out, device, bt, '"n":"%s","u":"Cel","v":%s' % (names[i], centi_text(temps[i])), tail)
        if mains != UNKNOWN:
            _add(out, device, bt, '"n":"mains","vb":%s' % ("true" if mains else "false"), tail)
        if battery != UNKNOWN:
            _add(out, device, bt, '"n":"battery","u":"%%EL","v":%d' % battery, tail)
    out.extend(b"]")
    return out


def _add(out, device, bt, body, tail):
    if len(out) > 1:
        out.extend(b",{")
    else:
        out.extend(('{"bn":"urn:dev:%s:","bt":%d,' % (device, bt)).encode())
    out.extend(body.encode())
    out.extend(tail.encode())
