"""ChainWatch gateway firmware (MicroPython, ESP32 class): probes -> flash ring buffer -> MQTT protocol v1,
with a local alarm. Every module here runs under MicroPython only: no CPython-only modules."""

FW_VERSION = "1.0.0"
