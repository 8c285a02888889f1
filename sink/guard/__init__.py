"""Guard: the policy, the owner and label checks, and the look-ups they decide from."""
