"""The ChainWatch web app: ``web.app.create_app`` builds it, ``chainwatch web`` serves it."""
