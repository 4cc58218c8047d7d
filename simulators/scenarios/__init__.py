"""Example scenario files (YAML) for ``chainwatch simulate --scenario``; see README.md here."""
