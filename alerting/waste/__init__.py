"""The medical-waste chain of custody: bag state, rules, manifests and jurisdiction profiles (pure)."""
