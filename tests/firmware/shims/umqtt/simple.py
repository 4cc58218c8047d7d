"""Shim of ``umqtt.simple`` for the firmware tests: an ``MQTTClient`` talking to the simulated broker of
``sim.WORLD``, which records every message it accepted (``delivered``), publishes the will when a
connection breaks, delivers retained and server messages to subscriptions, and can lose PUBACKs."""

import sim


class MQTTException(Exception):
    pass


class _Sock:
    def __init__(self, client):
        self.client = client

    def close(self):
        w = sim.world()
        if w.session is self.client:
            w.broker_drop()


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0, ssl=None):
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.cb = None
        self.will = None
        self.subs = []
        self.inbox = []
        self.alive = False
        self.sock = None

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain)

    def subscribed(self, topic):
        return topic in self.subs

    def _check(self):
        w = sim.world()
        if not (self.alive and w.link and w.broker_up and w.session is self):
            if w.session is self:
                w.broker_drop()
            self.alive = False
            raise OSError(104)  # ECONNRESET

    def connect(self, clean_session=True, timeout=None):
        w = sim.world()
        if not (w.link and w.broker_up):
            raise OSError(113)  # EHOSTUNREACH
        w.broker_drop()  # a new session with the same client id takes over
        w.connects.append({"client_id": self.client_id, "user": self.user, "will": self.will, "t": w.now_s()})
        self.alive = True
        self.sock = _Sock(self)
        w.session = self
        return 0

    def disconnect(self):
        w = sim.world()
        if w.session is self:
            w.session = None
        self.alive = False

    def ping(self):
        self._check()

    def publish(self, topic, msg, retain=False, qos=0):
        self._check()
        w = sim.world()
        w.accept(topic, msg, retain)
        if qos and w.lose_puback and topic.endswith("/telemetry"):
            w.lose_puback -= 1
            w.broker_drop()
            self.alive = False
            raise OSError(104)

    def subscribe(self, topic, qos=0):
        self._check()
        w = sim.world()
        self.subs.append(topic)
        if topic in w.retained:
            self.inbox.append((topic, w.retained[topic]))

    def check_msg(self):
        self._check()
        while self.inbox:
            topic, msg = self.inbox.pop(0)
            self.cb(topic.encode(), msg)

    def wait_msg(self):
        self.check_msg()
