"""Pure cold-chain rules: functions and state machines over readings, with time passed in, no I/O.

``types`` holds what the rules decide (``Decision``), ``profiles`` the thresholds per equipment profile,
``temperature`` the excursion, probe-fault and early-warning machine of one piece of equipment,
``device`` power, battery and offline per gateway, ``engine`` the order-independent driver.
"""
