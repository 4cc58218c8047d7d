"""Simulated clinics for ChainWatch: a thermal model of refrigerators and freezers (``fridge``), gateways
speaking MQTT protocol v1 (``gateway``, ``publisher``), scenarios of what goes wrong (``scenario``,
``scenarios/``), the engine that paces it all (``engine``) and ``chainwatch simulate`` (``cli``).

Waste scanners and their waste events are not simulated here.
"""
