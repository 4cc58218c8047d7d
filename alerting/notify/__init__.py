"""Notification channels (SMS providers, webhook, outbox). ``signing`` holds the providers' documented
request-signing schemes, checked against their published examples in the tests."""
