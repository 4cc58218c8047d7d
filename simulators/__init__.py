"""Simulated clinics for ChainWatch: a thermal model of refrigerators and freezers (``fridge``), gateways
speaking MQTT protocol v1 (``gateway``, ``publisher``), scenarios of what goes wrong (``scenario``,
``scenarios/``), the engine that paces it all (``engine``) and ``chainwatch simulate`` (``cli``).

``waste`` simulates the medical-waste chain of custody: waste scanners publishing every bag's scans
from the ward to the disposal plant (``chainwatch simulate --waste``).
"""
