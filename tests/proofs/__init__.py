"""Property-based proofs: clerk-sync against a pure model and hostile input."""
